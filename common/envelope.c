#include "autoconf.h"

#include <string.h>

#include "envelope.h"

const char *
dlv_kind_name(uint32_t kind)
{
	switch (kind) {
	case DLV_MBOX:		return "mbox";
	case DLV_MAILDIR:	return "maildir";
	case DLV_RELAY:		return "relay";
	case DLV_MONGO:		return "mongo";
	}
	return "none";
}

const char *
dlv_status_name(uint32_t status)
{
	switch (status) {
	case DLV_OK:		return "sent";
	case DLV_TEMPFAIL:	return "deferred";
	case DLV_PERMFAIL:	return "bounced";
	}
	return "unknown";
}

void
dlv_add(struct mbuf *m, const struct dlv *d)
{
	m_add_u32(m, d->kind);
	m_add_u32(m, d->notify);
	m_add_str(m, d->orcpt);
	m_add_str(m, d->action);
	m_add_str(m, d->user);
	m_add_str(m, d->dest);
	m_add_str(m, d->rcpt);
	m_add_str(m, d->orig);
}

void
dlv_get(struct mreader *r, struct dlv *d)
{
	memset(d, 0, sizeof(*d));
	d->kind = m_get_u32(r);
	d->notify = m_get_u32(r);
	m_get_str(r, d->orcpt, sizeof(d->orcpt));
	m_get_str(r, d->action, sizeof(d->action));
	m_get_str(r, d->user, sizeof(d->user));
	m_get_str(r, d->dest, sizeof(d->dest));
	m_get_str(r, d->rcpt, sizeof(d->rcpt));
	m_get_str(r, d->orig, sizeof(d->orig));
	if (d->kind == DLV_NONE || d->kind >= DLV_KIND_MAX || d->rcpt[0] == '\0' ||
	    (d->notify & ~(DSN_NOTIFY_NEVER | DSN_NOTIFY_SUCCESS |
	    DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY)) ||
	    ((d->notify & DSN_NOTIFY_NEVER) && d->notify != DSN_NOTIFY_NEVER))
		r->err = 1;
}

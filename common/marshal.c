#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "marshal.h"

void
m_init(struct mbuf *m)
{
	memset(m, 0, sizeof(*m));
}

void
m_free(struct mbuf *m)
{
	free(m->data);
	memset(m, 0, sizeof(*m));
}

static void
m_append(struct mbuf *m, const void *p, size_t n)
{
	if (m->err)
		return;
	if (m->len + n > IMSG_MAX_PAYLOAD) {
		m->err = 1;
		return;
	}
	if (m->len + n > m->cap) {
		size_t	 ncap = m->cap ? m->cap : 256;
		uint8_t	*np;

		while (ncap < m->len + n)
			ncap *= 2;
		if ((np = realloc(m->data, ncap)) == NULL) {
			m->err = 1;
			return;
		}
		m->data = np;
		m->cap = ncap;
	}
	if (n)
		memcpy(m->data + m->len, p, n);
	m->len += n;
}

void m_add_u8(struct mbuf *m, uint8_t v) { m_append(m, &v, sizeof(v)); }
void m_add_u32(struct mbuf *m, uint32_t v) { m_append(m, &v, sizeof(v)); }
void m_add_u64(struct mbuf *m, uint64_t v) { m_append(m, &v, sizeof(v)); }
void m_add_i64(struct mbuf *m, int64_t v) { m_append(m, &v, sizeof(v)); }

void
m_add_str(struct mbuf *m, const char *s)
{
	size_t	 n = s ? strlen(s) : 0;

	if (n > IMSG_MAX_PAYLOAD) {
		m->err = 1;
		return;
	}
	m_add_u32(m, (uint32_t)n);
	m_append(m, s, n);
}

void
m_add_data(struct mbuf *m, const void *p, size_t n)
{
	m_append(m, p, n);
}

void
m_reader(struct mreader *r, const struct imsg *imsg)
{
	m_reader_buf(r, imsg->data, imsg->hdr.len);
}

void
m_reader_buf(struct mreader *r, const void *p, size_t len)
{
	r->p = p;
	r->left = len;
	r->err = 0;
}

static int
m_take(struct mreader *r, void *dst, size_t n)
{
	if (r->err || r->left < n) {
		r->err = 1;
		if (dst)
			memset(dst, 0, n);
		return -1;
	}
	if (dst)
		memcpy(dst, r->p, n);
	r->p += n;
	r->left -= n;
	return 0;
}

uint8_t  m_get_u8(struct mreader *r) { uint8_t v; m_take(r, &v, sizeof(v)); return v; }
uint32_t m_get_u32(struct mreader *r) { uint32_t v; m_take(r, &v, sizeof(v)); return v; }
uint64_t m_get_u64(struct mreader *r) { uint64_t v; m_take(r, &v, sizeof(v)); return v; }
int64_t  m_get_i64(struct mreader *r) { int64_t v; m_take(r, &v, sizeof(v)); return v; }

void
m_get_str(struct mreader *r, char *dst, size_t dstsz)
{
	uint32_t	 n = m_get_u32(r);

	if (dstsz)
		dst[0] = '\0';
	if (r->err)
		return;
	if (n >= dstsz || n > r->left || memchr(r->p, '\0', n) != NULL) {
		r->err = 1;
		return;
	}
	memcpy(dst, r->p, n);
	dst[n] = '\0';
	r->p += n;
	r->left -= n;
}

char *
m_get_strdup(struct mreader *r, size_t maxlen)
{
	uint32_t	 n = m_get_u32(r);
	char		*s;

	if (r->err)
		return NULL;
	if (n > maxlen || n > r->left || memchr(r->p, '\0', n) != NULL) {
		r->err = 1;
		return NULL;
	}
	if ((s = malloc((size_t)n + 1)) == NULL) {
		r->err = 1;
		return NULL;
	}
	memcpy(s, r->p, n);
	s[n] = '\0';
	r->p += n;
	r->left -= n;
	return s;
}

void
m_get_data(struct mreader *r, void *dst, size_t n)
{
	m_take(r, dst, n);
}

int
m_end(const struct mreader *r)
{
	return (r->err || r->left != 0) ? -1 : 0;
}

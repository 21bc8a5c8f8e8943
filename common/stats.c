#include "autoconf.h"

#include <string.h>

#include "log.h"
#include "stats.h"

struct counter {
	char	name[48];
	int64_t	value;
};

static struct counter	counters[STATS_MAX];
static size_t		ncounters;

static struct counter *
counter_find(const char *name, int create)
{
	size_t	 i;

	for (i = 0; i < ncounters; i++)
		if (strcmp(counters[i].name, name) == 0)
			return &counters[i];
	if (!create)
		return NULL;
	if (ncounters == STATS_MAX) {
		log_warnx("stats: too many counters, dropping %s", name);
		return NULL;
	}
	strlcpy(counters[ncounters].name, name, sizeof(counters[0].name));
	counters[ncounters].value = 0;
	return &counters[ncounters++];
}

void
stat_increment(const char *name, int64_t delta)
{
	struct counter	*c = counter_find(name, 1);

	if (c)
		c->value += delta;
}

void
stat_decrement(const char *name, int64_t delta)
{
	stat_increment(name, -delta);
}

void
stat_set(const char *name, int64_t value)
{
	struct counter	*c = counter_find(name, 1);

	if (c)
		c->value = value;
}

int64_t
stat_get(const char *name)
{
	struct counter	*c = counter_find(name, 0);

	return c ? c->value : 0;
}

void
stat_marshal(struct mbuf *m)
{
	size_t	 i;

	m_add_u32(m, (uint32_t)ncounters);
	for (i = 0; i < ncounters; i++) {
		m_add_str(m, counters[i].name);
		m_add_u64(m, (uint64_t)counters[i].value);
	}
}

void
stat_reset(void)
{
	ncounters = 0;
}

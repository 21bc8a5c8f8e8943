/*
 * Typed marshalling of imsg payloads.  Writers append fixed-width integers
 * (host order: both ends run on this host) and length-prefixed strings; readers
 * take them back in the same order and latch an error on any underflow, so a
 * handler checks once with m_end(), which also insists that nothing is left.
 */
#ifndef MTAD_MARSHAL_H
#define MTAD_MARSHAL_H

#include <stddef.h>
#include <stdint.h>

#include "imsg.h"

struct mbuf {
	uint8_t	*data;
	size_t	 len;
	size_t	 cap;
	int	 err;		/* latched: out of memory or over IMSG_MAX_PAYLOAD */
};

void	m_init(struct mbuf *);
void	m_free(struct mbuf *);
void	m_add_u8(struct mbuf *, uint8_t);
void	m_add_u32(struct mbuf *, uint32_t);
void	m_add_u64(struct mbuf *, uint64_t);
void	m_add_i64(struct mbuf *, int64_t);
void	m_add_str(struct mbuf *, const char *);	/* NULL is sent as "" */
void	m_add_data(struct mbuf *, const void *, size_t);

struct mreader {
	const uint8_t	*p;
	size_t		 left;
	int		 err;
};

void	 m_reader(struct mreader *, const struct imsg *);
void	 m_reader_buf(struct mreader *, const void *, size_t);
uint8_t	 m_get_u8(struct mreader *);
uint32_t m_get_u32(struct mreader *);
uint64_t m_get_u64(struct mreader *);
int64_t	 m_get_i64(struct mreader *);
/* Copies a string; an error if it does not fit or holds a NUL byte. */
void	 m_get_str(struct mreader *, char *, size_t);
/* Like m_get_str for a fixed bound but allocates; NULL on error. */
char	*m_get_strdup(struct mreader *, size_t maxlen);
void	 m_get_data(struct mreader *, void *, size_t);
/* 0 when every read succeeded and the payload is fully consumed. */
int	 m_end(const struct mreader *);

#endif

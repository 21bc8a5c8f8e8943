/*
 * A message parsed with GMime 3 into the pieces of its store document.
 * Everything that goes into BSON is valid UTF-8 without NUL bytes, and
 * every piece is bounded (store_mime.h) so that no message, however
 * large or malformed, makes a document MongoDB would refuse: what does
 * not fit is cut and flagged, and the raw message keeps all of it.
 */
#include "autoconf.h"

#include <iconv.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gmime/gmime.h>

#include "log.h"
#include "store_mime.h"

#define REFERENCES_MAX	100

/*
 * Charset converters opened before the chroot and never closed.
 *
 * glibc's iconv loads one module per charset from
 * /usr/lib/x86_64-linux-gnu/gconv with dlopen, on the first iconv_open
 * that needs it.  In the deliver-worker's empty chroot (under seccomp,
 * where open fails softly) that load fails and GMime could decode
 * nothing but UTF-8 and ASCII.  The module list (gconv-modules.cache) is
 * mapped once and stays mapped; a loaded module stays loaded while a
 * descriptor uses it.  So each charset mail commonly declares is opened
 * here, towards UTF-8 as the decoder converts, and kept open: every
 * later iconv_open of the same conversion, by GMime after the chroot,
 * finds its module in memory.  Charsets outside this list decode as
 * unknown 8-bit text (U+FFFD for what is not ASCII or UTF-8); the raw
 * message keeps the original bytes.
 */
static const char *const prefetch_charsets[] = {
	"ISO-8859-1", "ISO-8859-2", "ISO-8859-3", "ISO-8859-4", "ISO-8859-5",
	"ISO-8859-6", "ISO-8859-7", "ISO-8859-8", "ISO-8859-9", "ISO-8859-10",
	"ISO-8859-11", "ISO-8859-13", "ISO-8859-14", "ISO-8859-15",
	"ISO-8859-16",
	"CP1250", "CP1251", "CP1252", "CP1253", "CP1254", "CP1255", "CP1256",
	"CP1257", "CP1258", "CP437", "CP850", "CP852", "CP866", "CP874",
	"KOI8-R", "KOI8-U", "MACINTOSH", "TIS-620", "VISCII",
	"ISO-2022-JP", "ISO-2022-JP-2", "EUC-JP", "SHIFT_JIS", "CP932",
	"GB2312", "GBK", "GB18030", "BIG5", "BIG5-HKSCS", "EUC-TW",
	"ISO-2022-CN", "EUC-KR", "CP949", "ISO-2022-KR", "JOHAB",
	"UTF-7", "UTF-16", "UTF-16BE", "UTF-16LE", "UTF-32", "UCS-2",
};
static iconv_t	prefetched[sizeof(prefetch_charsets) /
		    sizeof(prefetch_charsets[0])];
static int	mime_ready;

void
store_mime_init(void)
{
	size_t	 i, failed = 0;

	if (mime_ready)
		return;
	g_mime_init();
	for (i = 0; i < sizeof(prefetch_charsets) /
	    sizeof(prefetch_charsets[0]); i++) {
		prefetched[i] = iconv_open("UTF-8", prefetch_charsets[i]);
		if (prefetched[i] == (iconv_t)-1) {
			log_debug("store: charset %s: no converter",
			    prefetch_charsets[i]);
			failed++;
		}
	}
	if (failed > 0)
		log_info("store: %zu charsets have no converter and will "
		    "decode as unknown 8-bit text", failed);
	mime_ready = 1;
}

char *
store_utf8_clean(const char *s, size_t len, size_t *outlen)
{
	GString		*out;
	const char	*p = s, *end = s + len;
	gunichar	 c;

	out = g_string_sized_new(len + 1);
	while (p < end) {
		if (*p == '\0') {
			p++;
			continue;
		}
		c = g_utf8_get_char_validated(p, end - p);
		if (c == (gunichar)-1 || c == (gunichar)-2) {
			/* One bad byte: U+FFFD, then go on after it. */
			g_string_append(out, "\xef\xbf\xbd");
			p++;
			continue;
		}
		g_string_append_len(out, p, g_utf8_next_char(p) - p);
		p = g_utf8_next_char(p);
	}
	if (outlen != NULL)
		*outlen = out->len;
	return g_string_free(out, FALSE);
}

/* A copy of a GMime string, valid UTF-8 ("" for NULL). */
static char *
clean_dup(const char *s)
{
	return store_utf8_clean(s ? s : "", s ? strlen(s) : 0, NULL);
}

static void
append_str(bson_t *b, const char *key, const char *s)
{
	char	*c;
	size_t	 n;

	c = store_utf8_clean(s ? s : "", s ? strlen(s) : 0, &n);
	(void)bson_append_utf8(b, key, -1, c, (int)n);
	g_free(c);
}

/* [{name, address}] of an address list; groups are flattened. */
static void
append_addrs(bson_t *arr, InternetAddressList *list, uint32_t *n)
{
	InternetAddress	*ia;
	bson_t		 doc;
	char		 key[16];
	const char	*k;
	int		 i, count;

	if (list == NULL)
		return;
	count = internet_address_list_length(list);
	for (i = 0; i < count && *n < STORE_ADDRS_MAX; i++) {
		ia = internet_address_list_get_address(list, i);
		if (INTERNET_ADDRESS_IS_GROUP(ia)) {
			append_addrs(arr, internet_address_group_get_members(
			    INTERNET_ADDRESS_GROUP(ia)), n);
			continue;
		}
		if (!INTERNET_ADDRESS_IS_MAILBOX(ia))
			continue;
		(void)bson_uint32_to_string(*n, &k, key, sizeof(key));
		if (!bson_append_document_begin(arr, k, -1, &doc))
			return;
		append_str(&doc, "name", internet_address_get_name(ia));
		append_str(&doc, "address", internet_address_mailbox_get_addr(
		    INTERNET_ADDRESS_MAILBOX(ia)));
		(void)bson_append_document_end(arr, &doc);
		(*n)++;
	}
}

static void
append_addr_field(bson_t *b, const char *key, InternetAddressList *list)
{
	bson_t		 arr;
	uint32_t	 n = 0;

	if (!bson_append_array_begin(b, key, -1, &arr))
		return;
	append_addrs(&arr, list, &n);
	(void)bson_append_array_end(b, &arr);
}

/* in_reply_to: the first id of In-Reply-To; references: the list. */
static void
append_references(bson_t *b, GMimeMessage *msg)
{
	GMimeReferences	*refs;
	const char	*v, *k;
	bson_t		 arr;
	char		 key[16];
	int		 i, n;

	if ((v = g_mime_object_get_header(GMIME_OBJECT(msg),
	    "In-Reply-To")) != NULL &&
	    (refs = g_mime_references_parse(NULL, v)) != NULL) {
		if (g_mime_references_length(refs) > 0)
			append_str(b, "in_reply_to",
			    g_mime_references_get_message_id(refs, 0));
		else
			(void)bson_append_null(b, "in_reply_to", -1);
		g_mime_references_free(refs);
	} else
		(void)bson_append_null(b, "in_reply_to", -1);
	if (!bson_append_array_begin(b, "references", -1, &arr))
		return;
	if ((v = g_mime_object_get_header(GMIME_OBJECT(msg),
	    "References")) != NULL &&
	    (refs = g_mime_references_parse(NULL, v)) != NULL) {
		n = g_mime_references_length(refs);
		for (i = 0; i < n && i < REFERENCES_MAX; i++) {
			(void)bson_uint32_to_string((uint32_t)i, &k, key,
			    sizeof(key));
			append_str(&arr, k,
			    g_mime_references_get_message_id(refs, i));
		}
		g_mime_references_free(refs);
	}
	(void)bson_append_array_end(b, &arr);
}

static void
build_headers(struct store_mime *m, GMimeMessage *msg)
{
	GDateTime	*dt;
	const char	*v;

	append_str(&m->headers, "subject", g_mime_message_get_subject(msg));
	append_addr_field(&m->headers, "from", g_mime_message_get_from(msg));
	append_addr_field(&m->headers, "to", g_mime_message_get_to(msg));
	append_addr_field(&m->headers, "cc", g_mime_message_get_cc(msg));
	append_addr_field(&m->headers, "reply_to",
	    g_mime_message_get_reply_to(msg));
	if ((dt = g_mime_message_get_date(msg)) != NULL)
		(void)bson_append_date_time(&m->headers, "date", -1,
		    g_date_time_to_unix(dt) * 1000);
	else
		(void)bson_append_null(&m->headers, "date", -1);
	if ((v = g_mime_message_get_message_id(msg)) != NULL)
		append_str(&m->headers, "message_id", v);
	else
		(void)bson_append_null(&m->headers, "message_id", -1);
	append_references(&m->headers, msg);
}

/* The value as it stands in the message, folding removed, trimmed. */
static char *
unfold(const char *raw)
{
	char	*out, *w;
	size_t	 len;

	len = strlen(raw);
	out = g_malloc(len + 1);
	for (w = out; *raw; raw++)
		if (*raw != '\r' && *raw != '\n')
			*w++ = *raw;
	while (w > out && (w[-1] == ' ' || w[-1] == '\t'))
		w--;
	*w = '\0';
	len = strspn(out, " \t");
	memmove(out, out + len, strlen(out + len) + 1);
	return out;
}

static void
build_header_list(struct store_mime *m, GMimeMessage *msg)
{
	GMimeHeaderList	*hl;
	GMimeHeader	*h;
	bson_t		 doc;
	const char	*raw, *k;
	char		 key[16], *v;
	size_t		 total = 0;
	int		 i, count;
	uint32_t	 n = 0;

	hl = g_mime_object_get_header_list(GMIME_OBJECT(msg));
	count = g_mime_header_list_get_count(hl);
	for (i = 0; i < count && n < STORE_HEADER_COUNT_MAX; i++) {
		h = g_mime_header_list_get_header_at(hl, i);
		raw = g_mime_header_get_raw_value(h);
		if ((v = unfold(raw ? raw : "")) == NULL)
			continue;
		total += strlen(v) + strlen(g_mime_header_get_name(h));
		if (total > STORE_HEADERS_MAX) {
			g_free(v);
			break;
		}
		(void)bson_uint32_to_string(n, &k, key, sizeof(key));
		if (bson_append_document_begin(&m->header_list, k, -1, &doc)) {
			append_str(&doc, "name", g_mime_header_get_name(h));
			append_str(&doc, "value", v);
			(void)bson_append_document_end(&m->header_list, &doc);
			n++;
		}
		g_free(v);
	}
}

/* The content of a leaf part, transfer encoding undone. */
static GByteArray *
part_content(GMimePart *part)
{
	GMimeDataWrapper	*w;
	GMimeStream		*mem;
	GByteArray		*ba;

	if ((w = g_mime_part_get_content(part)) == NULL)
		return g_byte_array_new();
	mem = g_mime_stream_mem_new();
	g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(mem), FALSE);
	if (g_mime_data_wrapper_write_to_stream(w, mem) == -1) {
		ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
		g_byte_array_set_size(ba, 0);
	} else
		ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
	g_object_unref(mem);
	return ba;
}

/*
 * A text part as UTF-8: converted from its declared charset when iconv
 * knows it; otherwise GMime's 8-bit guess (UTF-8, then Latin-1).
 */
static char *
part_text(GMimePart *part, size_t *len)
{
	GByteArray	*ba;
	const char	*charset;
	char		*conv = NULL, *out;
	iconv_t		 cd;

	ba = part_content(part);
	charset = g_mime_object_get_content_type_parameter(GMIME_OBJECT(part),
	    "charset");
	if (charset != NULL && strcasecmp(charset, "utf-8") != 0 &&
	    strcasecmp(charset, "us-ascii") != 0) {
		cd = g_mime_iconv_open("UTF-8", charset);
		if (cd != (iconv_t)-1) {
			conv = g_mime_iconv_strndup(cd, (const char *)ba->data,
			    ba->len);
			g_mime_iconv_close(cd);
		}
	}
	if (conv == NULL && !g_utf8_validate((const char *)ba->data,
	    (gssize)ba->len, NULL))
		conv = g_mime_utils_decode_8bit(NULL, (const char *)ba->data,
		    ba->len);
	if (conv != NULL)
		out = store_utf8_clean(conv, strlen(conv), len);
	else
		out = store_utf8_clean((const char *)ba->data, ba->len, len);
	g_free(conv);
	g_byte_array_free(ba, TRUE);
	return out;
}

/* Appends a body part to text or html, cut at STORE_BODY_MAX. */
static void
add_body(char **body, size_t *blen, int *truncated, char *s, size_t len)
{
	size_t	 room, sep = *body != NULL ? 1 : 0;
	char	*nb, *cut;

	if (*blen + sep >= STORE_BODY_MAX) {
		*truncated = 1;
		g_free(s);
		return;
	}
	room = STORE_BODY_MAX - *blen - sep;
	if (len > room) {
		/* Cut on a character boundary. */
		cut = g_utf8_find_prev_char(s, s + room + 1);
		len = cut != NULL ? (size_t)(cut - s) : 0;
		*truncated = 1;
	}
	nb = g_realloc(*body, *blen + sep + len + 1);
	if (sep)
		nb[(*blen)++] = '\n';
	memcpy(nb + *blen, s, len);
	*blen += len;
	nb[*blen] = '\0';
	*body = nb;
	g_free(s);
}

static char *
lower_dup(const char *s)
{
	char	*c = clean_dup(s), *p;

	for (p = c; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return c;
}

static struct store_attachment *
new_attachment(struct store_mime *m, GMimeObject *obj)
{
	struct store_attachment	*a;
	GMimeContentDisposition	*disp;
	GMimeContentType	*ct;
	const char		*cid;
	char			*type;

	if (m->natt >= STORE_PARTS_MAX) {
		m->att_dropped = 1;
		return NULL;
	}
	m->att = g_realloc(m->att, (m->natt + 1) * sizeof(*m->att));
	a = &m->att[m->natt++];
	memset(a, 0, sizeof(*a));
	ct = g_mime_object_get_content_type(obj);
	type = ct != NULL ? g_mime_content_type_get_mime_type(ct) : NULL;
	a->content_type = lower_dup(type ? type : "application/octet-stream");
	g_free(type);
	disp = g_mime_object_get_content_disposition(obj);
	a->disposition = lower_dup(disp ?
	    g_mime_content_disposition_get_disposition(disp) : "");
	cid = g_mime_object_get_content_id(obj);
	a->content_id = clean_dup(cid);
	a->filename = clean_dup(GMIME_IS_PART(obj) ?
	    g_mime_part_get_filename(GMIME_PART(obj)) :
	    (disp ? g_mime_content_disposition_get_parameter(disp, "filename") :
	    NULL));
	return a;
}

static void
add_attachment_part(struct store_mime *m, GMimePart *part)
{
	struct store_attachment	*a;
	GByteArray		*ba;

	if ((a = new_attachment(m, GMIME_OBJECT(part))) == NULL)
		return;
	ba = part_content(part);
	a->size = ba->len;
	a->data = g_byte_array_free(ba, FALSE);
}

/* An attached message (message/rfc822): its bytes as they came. */
static void
add_message_part(struct store_mime *m, GMimeMessagePart *mp)
{
	struct store_attachment	*a;
	GMimeMessage		*inner;
	GMimeStream		*mem;
	GByteArray		*ba;

	if ((a = new_attachment(m, GMIME_OBJECT(mp))) == NULL)
		return;
	mem = g_mime_stream_mem_new();
	g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(mem), FALSE);
	inner = g_mime_message_part_get_message(mp);
	if (inner != NULL)
		(void)g_mime_object_write_to_stream(GMIME_OBJECT(inner), NULL,
		    mem);
	ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
	g_object_unref(mem);
	a->size = ba->len;
	a->data = g_byte_array_free(ba, FALSE);
}

/* text/plain or text/html meant to be read, not saved. */
static int
is_body(GMimeObject *obj)
{
	GMimeContentType	*ct;
	GMimeContentDisposition	*disp;

	if (!GMIME_IS_TEXT_PART(obj))
		return 0;
	ct = g_mime_object_get_content_type(obj);
	if (ct == NULL || (!g_mime_content_type_is_type(ct, "text", "plain") &&
	    !g_mime_content_type_is_type(ct, "text", "html")))
		return 0;
	disp = g_mime_object_get_content_disposition(obj);
	if (disp != NULL && g_mime_content_disposition_is_attachment(disp))
		return 0;
	return g_mime_part_get_filename(GMIME_PART(obj)) == NULL;
}

static void
walk(struct store_mime *m, GMimeObject *obj, int depth)
{
	GMimeMultipart	*mp;
	char		*s;
	size_t		 len;
	int		 i, n;

	if (depth > STORE_DEPTH_MAX)
		return;
	if (GMIME_IS_MULTIPART(obj)) {
		mp = GMIME_MULTIPART(obj);
		n = g_mime_multipart_get_count(mp);
		for (i = 0; i < n; i++)
			walk(m, g_mime_multipart_get_part(mp, i), depth + 1);
	} else if (GMIME_IS_MESSAGE_PART(obj))
		add_message_part(m, GMIME_MESSAGE_PART(obj));
	else if (GMIME_IS_PART(obj)) {
		if (!is_body(obj)) {
			add_attachment_part(m, GMIME_PART(obj));
			return;
		}
		s = part_text(GMIME_PART(obj), &len);
		if (g_mime_content_type_is_type(
		    g_mime_object_get_content_type(obj), "text", "html"))
			add_body(&m->html, &m->html_len, &m->html_truncated, s,
			    len);
		else
			add_body(&m->text, &m->text_len, &m->text_truncated, s,
			    len);
	}
}

int
store_mime_parse(const char *msg, size_t len, struct store_mime *m)
{
	GMimeParserOptions	*opts;
	GMimeStream		*stream;
	GMimeParser		*parser;
	GMimeMessage		*gm;
	GMimeObject		*body;

	memset(m, 0, sizeof(*m));
	m->ready = 1;
	bson_init(&m->headers);
	bson_init(&m->header_list);
	store_mime_init();
	stream = g_mime_stream_mem_new_with_buffer(msg, len);
	parser = g_mime_parser_new_with_stream(stream);
	g_object_unref(stream);
	/* Mail as it comes, not as the RFCs say it should. */
	opts = g_mime_parser_options_new();
	g_mime_parser_options_set_rfc2047_compliance_mode(opts,
	    GMIME_RFC_COMPLIANCE_LOOSE);
	g_mime_parser_options_set_address_compliance_mode(opts,
	    GMIME_RFC_COMPLIANCE_LOOSE);
	g_mime_parser_options_set_parameter_compliance_mode(opts,
	    GMIME_RFC_COMPLIANCE_LOOSE);
	gm = g_mime_parser_construct_message(parser, opts);
	g_mime_parser_options_free(opts);
	g_object_unref(parser);
	if (gm == NULL)
		return -1;
	build_headers(m, gm);
	build_header_list(m, gm);
	if ((body = g_mime_message_get_mime_part(gm)) != NULL)
		walk(m, body, 0);
	g_object_unref(gm);
	return 0;
}

void
store_mime_free(struct store_mime *m)
{
	size_t	 i;

	if (!m->ready)
		return;
	bson_destroy(&m->headers);
	bson_destroy(&m->header_list);
	g_free(m->text);
	g_free(m->html);
	for (i = 0; i < m->natt; i++) {
		g_free(m->att[i].filename);
		g_free(m->att[i].content_type);
		g_free(m->att[i].disposition);
		g_free(m->att[i].content_id);
		g_free(m->att[i].data);
	}
	g_free(m->att);
	memset(m, 0, sizeof(*m));
}

static int
append_attachments(const struct store_mime *m, const bson_value_t *ids,
    bson_t *doc)
{
	const struct store_attachment	*a;
	bson_t				 arr, d;
	const char			*k;
	char				 key[16];
	size_t				 i;
	int				 ok = 1;

	if (!bson_append_array_begin(doc, "attachments", -1, &arr))
		return -1;
	for (i = 0; i < m->natt; i++) {
		a = &m->att[i];
		(void)bson_uint32_to_string((uint32_t)i, &k, key, sizeof(key));
		ok = ok && bson_append_document_begin(&arr, k, -1, &d);
		if (!ok)
			break;
		ok = BSON_APPEND_UTF8(&d, "filename", a->filename) &&
		    BSON_APPEND_UTF8(&d, "content_type", a->content_type) &&
		    BSON_APPEND_UTF8(&d, "disposition", a->disposition) &&
		    BSON_APPEND_UTF8(&d, "content_id", a->content_id) &&
		    BSON_APPEND_INT64(&d, "size", (int64_t)a->size) &&
		    (ids == NULL || BSON_APPEND_VALUE(&d, "gridfs_id",
		    &ids[i])) &&
		    bson_append_document_end(&arr, &d);
	}
	ok = bson_append_array_end(doc, &arr) && ok;
	return ok ? 0 : -1;
}

int
store_mime_append(const struct store_mime *m, const bson_value_t *ids,
    bson_t *doc)
{
	int	 ok;

	ok = BSON_APPEND_DOCUMENT(doc, "headers", &m->headers) &&
	    BSON_APPEND_ARRAY(doc, "header_list", &m->header_list);
	ok = ok && (m->text != NULL ?
	    bson_append_utf8(doc, "text", -1, m->text, (int)m->text_len) :
	    BSON_APPEND_NULL(doc, "text"));
	ok = ok && (m->html != NULL ?
	    bson_append_utf8(doc, "html", -1, m->html, (int)m->html_len) :
	    BSON_APPEND_NULL(doc, "html"));
	if (ok && (m->text_truncated || m->html_truncated ||
	    m->att_dropped)) {
		ok = BSON_APPEND_BOOL(doc, "truncated", true);
	}
	if (!ok)
		return -1;
	return append_attachments(m, ids, doc);
}

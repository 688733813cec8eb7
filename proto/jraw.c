#include "proto/jraw.h"

#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* The scanner makes one pass over the text with no allocation and no
 * recursion: the containers open below the top-level object are bits of
 * one word, and the keys of each open object sit on a small stack for the
 * duplicate check (struct keys). The top level's keys are checked against the members
 * found so far. Every limit below is where the scanner stops deciding and
 * returns -1; none of them is a limit of jansson's. */

#define KEY_STACK	(8 * JRAW_MAX_KEYS)	/* keys of all open nested objects */
#define INT_DIGITS	18	/* fits an int64_t: strtoll cannot overflow */
#define REAL_DIGITS	200	/* before the point, and with EXP_DIGITS ... */
#define EXP_DIGITS	2	/* ... |x| < 1e299: strtod cannot overflow */

/* The scanner's steps are forced inline, so that jraw_object and
 * scan_nested each run as one function. */
#define STEP	static inline __attribute__((always_inline))

#define ONES	0x0101010101010101ULL
#define HIGHS	0x8080808080808080ULL

struct span {
	const char	*p;
	size_t		 n;
};

#define WS_BITS	(1ULL << ' ' | 1ULL << '\t' | 1ULL << '\n' | 1ULL << '\r')

/* Skips JSON whitespace from p. */
STEP const char *
skip_ws(const char *p, const char *end)
{
	while (p < end && (unsigned char)*p <= ' ' && (WS_BITS >> *p & 1))
		p++;
	return p;
}

static inline uint64_t
load64(const char *p)
{
	uint64_t x;
	memcpy(&x, p, sizeof x);
	return x;
}

/* Marks with its high bit each byte of x whose low seven bits are below
 * 0x20, a quote or a backslash. Exact, as no sum carries into the next
 * byte: x & HIGHS then tells UTF-8 bytes apart. */
static inline uint64_t
special7(uint64_t x)
{
	uint64_t lo = x & ~HIGHS;
	uint64_t q = lo ^ '"' * ONES, b = lo ^ '\\' * ONES;
	return ~((lo + 0x60 * ONES) & (q + 0x7f * ONES) & (b + 0x7f * ONES)) &
	    HIGHS;
}

/* The index of the first marked byte of a non-zero mask. */
static inline size_t
first_marked(uint64_t mask)
{
	return (size_t)__builtin_ctzll(mask) >> 3;
}

static inline bool
plain1(unsigned char c)
{
	return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

/* The end of the run of printable ASCII at p other than a quote or a
 * backslash: sixteen bytes at a time with SSE2 (every x86-64 has it),
 * else eight at a time where the byte order allows. */
static inline const char *
skip_plain(const char *p, const char *end)
{
#if defined(__SSE2__)
	const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');
	const __m128i space = _mm_set1_epi8(0x20);
	while (end - p >= 16) {
		__m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
		/* Signed: bytes of 0x80 and above count as below 0x20. */
		__m128i stop = _mm_or_si128(_mm_cmplt_epi8(x, space),
		    _mm_or_si128(_mm_cmpeq_epi8(x, quote),
		    _mm_cmpeq_epi8(x, bslash)));
		unsigned mask = (unsigned)_mm_movemask_epi8(stop);
		if (mask != 0)
			return p + __builtin_ctz(mask);
		p += 16;
	}
#endif
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	while (end - p >= 8) {
		uint64_t x = load64(p);
		uint64_t stop = (x & HIGHS) | special7(x);
		if (stop != 0)
			return p + first_marked(stop);
		p += 8;
	}
#endif
	while (p < end && plain1((unsigned char)*p))
		p++;
	return p;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Checks \uXXXX at p (the backslash): NUL and surrogates are refused, even
 * a valid pair, as jansson's answer for them is not worth deciding here. */
static const char *
skip_uescape(const char *p, const char *end)
{
	if (end - p < 6)
		return NULL;
	int v = 0;
	for (int i = 2; i < 6; i++) {
		int h = hexval(p[i]);
		if (h < 0)
			return NULL;
		v = v << 4 | h;
	}
	if (v == 0 || (v >= 0xd800 && v <= 0xdfff))
		return NULL;
	return p + 6;
}

/* Checks the escape at p (the backslash); the byte after it, or NULL. */
static const char *
skip_escape(const char *p, const char *end)
{
	if (end - p < 2)
		return NULL;
	switch (p[1]) {
	case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r':
	case 't':
		return p + 2;
	case 'u':
		return skip_uescape(p, end);
	default:
		return NULL;
	}
}

/* Checks the UTF-8 sequence at p (a byte >= 0x80) as RFC 3629 does: no
 * overlong forms, no surrogates, nothing above U+10FFFF. */
static const char *
skip_utf8(const char *p, const char *end)
{
	const unsigned char *u = (const unsigned char *)p;
	unsigned char lo = 0x80, hi = 0xbf;
	ptrdiff_t len;
	if (u[0] >= 0xc2 && u[0] <= 0xdf)
		len = 2;
	else if (u[0] >= 0xe0 && u[0] <= 0xef)
		len = 3;
	else if (u[0] >= 0xf0 && u[0] <= 0xf4)
		len = 4;
	else
		return NULL;
	if (u[0] == 0xe0)
		lo = 0xa0;
	else if (u[0] == 0xed)
		hi = 0x9f;
	else if (u[0] == 0xf0)
		lo = 0x90;
	else if (u[0] == 0xf4)
		hi = 0x8f;
	if (end - p < len || u[1] < lo || u[1] > hi)
		return NULL;
	for (ptrdiff_t i = 2; i < len; i++)
		if ((u[i] & 0xc0) != 0x80)
			return NULL;
	return p + len;
}

size_t
jraw_utf8_len(const char *s, size_t n)
{
	if ((unsigned char)s[0] < 0x80)
		return 1;
	const char *e = skip_utf8(s, s + n);
	return e != NULL ? (size_t)(e - s) : 0;
}

void
jraw_put_valid_utf8(struct buf *out, const char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t len = jraw_utf8_len(s + i, n - i);
		buf_append(out, len > 0 ? s + i : "\xef\xbf\xbd", len > 0 ? len : 3);
		i += len > 0 ? len : 1;
	}
}

/* The rest of a string from p, a byte that is not plain: escapes, UTF-8
 * and the closing quote. The byte after that quote, or NULL. */
static __attribute__((noinline)) const char *
string_rest(const char *p, const char *end, bool *escaped)
{
	for (;;) {
		if (p == end)
			return NULL;
		if (*p == '"')
			return p + 1;
		if (*p == '\\') {
			*escaped = true;
			p = skip_escape(p, end);
		} else if ((unsigned char)*p >= 0x80)
			p = skip_utf8(p, end);
		else
			return NULL;	/* a control byte */
		if (p == NULL)
			return NULL;
		p = skip_plain(p, end);
	}
}

/* The string whose opening quote is at p: the byte after its closing
 * quote, or NULL; *escaped tells whether it holds an escape. Most strings
 * are plain ASCII to their closing quote: that path is inline. */
STEP const char *
scan_string(const char *p, const char *end, bool *escaped)
{
	p = skip_plain(p + 1, end);
	*escaped = false;
	if (p < end && *p == '"')
		return p + 1;
	return string_rest(p, end, escaped);
}

static inline bool
same_key(const char *a, size_t an, const char *b, size_t bn)
{
	return an == bn && memcmp(a, b, an) == 0;
}

/* Marks each byte of x that is not an ASCII digit (some bit of it set):
 * a digit is 0x0-0x9 in the low half of x ^ '0' and nothing in the high
 * half, and adding 6 to a low half cannot carry out of its byte. */
static inline uint64_t
nondigit8(uint64_t x)
{
	uint64_t t = x ^ '0' * ONES;
	return (t | ((t & 0x0f * ONES) + 0x06 * ONES)) & 0xf0 * ONES;
}

/* The end of the run of digits at p, eight bytes at a time where the
 * byte order allows. */
STEP const char *
skip_digits(const char *p, const char *end)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	while (end - p >= 8) {
		uint64_t stop = nondigit8(load64(p));
		if (stop != 0)
			return p + first_marked(stop);
		p += 8;
	}
#endif
	while (p < end && *p >= '0' && *p <= '9')
		p++;
	return p;
}

/* Scans a fraction and an exponent at p, if any; NULL if malformed or the
 * exponent is longer than EXP_DIGITS. */
static const char *
skip_real_tail(const char *p, const char *end)
{
	if (p < end && *p == '.') {
		const char *f = ++p;
		if ((p = skip_digits(p, end)) == f)
			return NULL;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		const char *e = p;
		p = skip_digits(p, end);
		if (p == e || p - e > EXP_DIGITS)
			return NULL;
	}
	return p;
}

/* The number at p as RFC 8259 writes it, within the limits above: the
 * byte after it, or NULL. */
STEP const char *
scan_number(const char *p, const char *end, enum jraw_type *t)
{
	if (*p == '-')
		p++;
	const char *digits = p;
	if (p < end && *p == '0')
		p++;
	else
		p = skip_digits(p, end);
	if (p == digits)
		return NULL;
	ptrdiff_t nint = p - digits;
	if (p == end || (*p != '.' && *p != 'e' && *p != 'E')) {
		*t = JRAW_INT;
		return nint <= INT_DIGITS ? p : NULL;
	}
	*t = JRAW_REAL;
	return nint <= REAL_DIGITS ? skip_real_tail(p, end) : NULL;
}

STEP const char *
scan_literal(const char *p, const char *end, const char *lit, size_t len)
{
	if ((size_t)(end - p) < len || memcmp(p, lit, len) != 0)
		return NULL;
	return p + len;
}

/* The string, number or literal at p (before end): the byte after it, or
 * NULL. *escaped is set for a string. */
STEP const char *
scan_scalar(const char *p, const char *end, enum jraw_type *t, bool *escaped)
{
	switch (*p) {
	case '"':
		*t = JRAW_STRING;
		return scan_string(p, end, escaped);
	case 't':
		*t = JRAW_TRUE;
		return scan_literal(p, end, "true", 4);
	case 'f':
		*t = JRAW_FALSE;
		return scan_literal(p, end, "false", 5);
	case 'n':
		*t = JRAW_NULL;
		return scan_literal(p, end, "null", 4);
	default:
		return scan_number(p, end, t);
	}
}

/* p at the byte c, blanks allowed before it; NULL when another comes. The
 * byte is tested first: compact JSON has no blanks. */
STEP const char *
at_byte(const char *p, const char *end, char c)
{
	if (p < end && *p == c)
		return p;
	p = skip_ws(p, end);
	return p < end && *p == c ? p : NULL;
}

/* One of 64 bits for the key p[0..n), from its length and last byte:
 * keys of different bits differ, so a key whose bit its object has not
 * set yet is new without a comparison. */
STEP uint64_t
key_bit(const char *p, size_t n)
{
	unsigned h = (unsigned)n * 7 + (n > 0 ? (unsigned char)p[n - 1] : 0);
	return (uint64_t)1 << (h & 63);
}

/* The keys of the open nested objects, for the duplicate check: those of
 * the object at depth d start at base[d], their bits in bits[d]. */
struct keys {
	int		 n;
	int		 base[JRAW_MAX_DEPTH];
	uint64_t	 bits[JRAW_MAX_DEPTH];
	struct span	 k[KEY_STACK];
};

/* Records the key p[0..n) of the object at depth d, unless it is there
 * already or the object has too many keys to check. */
STEP bool
add_key(struct keys *ks, int d, const char *p, size_t n)
{
	int first = ks->base[d];
	uint64_t bit = key_bit(p, n);
	if (ks->n - first >= JRAW_MAX_KEYS || ks->n >= KEY_STACK)
		return false;
	if (ks->bits[d] & bit)
		for (int i = first; i < ks->n; i++)
			if (same_key(ks->k[i].p, ks->k[i].n, p, n))
				return false;
	ks->bits[d] |= bit;
	ks->k[ks->n++] = (struct span){ p, n };
	return true;
}

#define IN_OBJECT(objs, d)	((objs) >> (d) & 1)

/* The container whose bracket is at p, with all it holds: the byte after
 * its closing bracket, or NULL. One loop and no recursion: objs has bit d
 * set when the container at depth d is an object. Each place where JSON
 * allows blanks looks at its byte first, and skips blanks only when it
 * finds one. */
static const char *
scan_nested(const char *p, const char *end)
{
	struct keys ks;
	uint64_t objs = 0;
	int depth = 0;		/* containers open */
	enum jraw_type t;
	bool esc;

	ks.n = 0;
open:	/* at an opening bracket */
	if (depth >= JRAW_MAX_DEPTH - 1)
		return NULL;
	if (*p++ == '{') {
		objs |= (uint64_t)1 << depth;
		ks.bits[depth] = 0;
		ks.base[depth++] = ks.n;
		p = skip_ws(p, end);
		if (p < end && *p == '"')
			goto key;
		if (p < end && *p++ == '}')
			goto close;
		return NULL;
	}
	objs &= ~((uint64_t)1 << depth);
	depth++;
	p = skip_ws(p, end);
	if (p < end && *p == ']') {
		p++;
		goto close;
	}
	goto value;
key:	/* at a key's opening quote */
	{
		const char *k = p + 1;
		if ((p = scan_string(p, end, &esc)) == NULL || esc ||
		    !add_key(&ks, depth - 1, k, (size_t)(p - 1 - k)) ||
		    (p = at_byte(p, end, ':')) == NULL)
			return NULL;
		p++;
	}
value:	/* a value, blanks allowed before it */
	if (p == end)
		return NULL;
	switch (*p) {
	case '{': case '[':
		goto open;
	case ' ': case '\t': case '\n': case '\r':
		p = skip_ws(p, end);
		goto value;
	}
	if ((p = scan_scalar(p, end, &t, &esc)) == NULL)
		return NULL;
next:	/* after a value: a comma or the closing bracket */
	if (p == end)
		return NULL;
	switch (*p++) {
	case ',':
		if (!IN_OBJECT(objs, depth - 1))
			goto value;
		if ((p = at_byte(p, end, '"')) == NULL)
			return NULL;
		goto key;
	case '}':
		if (IN_OBJECT(objs, depth - 1))
			goto close;
		return NULL;
	case ']':
		if (!IN_OBJECT(objs, depth - 1))
			goto close;
		return NULL;
	case ' ': case '\t': case '\n': case '\r':
		p = skip_ws(p, end);
		goto next;
	default:
		return NULL;
	}
close:	/* after a closing bracket */
	if (IN_OBJECT(objs, --depth))
		ks.n = ks.base[depth];
	if (depth > 0)
		goto next;
	return p;
}

/* One top-level member at p, blanks allowed before it, into m[k],
 * refusing a key of m[0..k) (whose bits are in *seen): the byte after its
 * value, or NULL. */
STEP const char *
scan_member(const char *p, const char *end, struct jraw_member *m, int k,
    uint64_t *seen)
{
	struct jraw_member *e = &m[k];
	bool esc = false;
	if ((p = at_byte(p, end, '"')) == NULL)
		return NULL;
	e->key = p + 1;
	if ((p = scan_string(p, end, &esc)) == NULL || esc)
		return NULL;
	e->key_len = (size_t)(p - 1 - e->key);
	uint64_t bit = key_bit(e->key, e->key_len);
	if (*seen & bit)
		for (int i = 0; i < k; i++)
			if (same_key(m[i].key, m[i].key_len, e->key,
			    e->key_len))
				return NULL;
	*seen |= bit;
	if ((p = at_byte(p, end, ':')) == NULL)
		return NULL;
	p = skip_ws(p + 1, end);
	if (p == end)
		return NULL;
	e->val = p;
	switch (*p) {
	case '{':
		e->type = JRAW_OBJECT;
		p = scan_nested(p, end);
		break;
	case '[':
		e->type = JRAW_ARRAY;
		p = scan_nested(p, end);
		break;
	default:
		p = scan_scalar(p, end, &e->type, &esc);
	}
	if (p == NULL)
		return NULL;
	e->val_len = (size_t)(p - e->val);
	e->escaped = e->type == JRAW_STRING && esc;
	return p;
}

int
jraw_object(const char *p, size_t n, struct jraw_member *m, int max)
{
	const char *end = p + n;
	uint64_t seen = 0;
	int k = 0;
	if ((p = at_byte(p, end, '{')) == NULL)
		return -1;
	p = skip_ws(p + 1, end);
	if (p < end && *p == '}')
		p++;
	else
		for (;;) {
			if (k >= max || (p = scan_member(p, end, m, k, &seen)) ==
			    NULL)
				return -1;
			k++;
			if ((p = skip_ws(p, end)) == end)
				return -1;
			if (*p == '}') {
				p++;
				break;
			}
			if (*p++ != ',')
				return -1;
		}
	return skip_ws(p, end) == end ? k : -1;
}


/* At most INT_DIGITS digits: no overflow, no strtoll. NULL (a member
 * jraw_get did not find) is false, so that calls compose. */
bool
jraw_int(const struct jraw_member *e, int64_t *out)
{
	if (e == NULL || e->type != JRAW_INT)
		return false;
	const char *p = e->val, *end = e->val + e->val_len;
	bool neg = *p == '-';
	int64_t v = 0;
	for (p += neg; p < end; p++)
		v = v * 10 + (*p - '0');
	*out = neg ? -v : v;
	return true;
}

/* NULL is false, as for jraw_int. */
bool
jraw_str(const struct jraw_member *e, const char **s, size_t *n)
{
	if (e == NULL || e->type != JRAW_STRING || e->escaped)
		return false;
	*s = e->val + 1;
	*n = e->val_len - 2;
	return true;
}

/* Whether jraw_put_str copies the byte as it is. */
static inline bool
put_plain1(unsigned char c)
{
	return c >= 0x20 && c != '"' && c != '\\';
}

/* The end of the run of bytes at s[i..n) that need no escape. */
static inline size_t
put_run(const char *s, size_t i, size_t n)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	while (n - i >= 8) {
		uint64_t x = load64(s + i);
		uint64_t stop = special7(x) & ~x;	/* UTF-8 passes */
		if (stop != 0)
			return i + first_marked(stop);
		i += 8;
	}
#endif
	while (i < n && put_plain1((unsigned char)s[i]))
		i++;
	return i;
}

/* Appends the escape for c (a control byte, quote or backslash). */
static void
put_escape(struct buf *out, unsigned char c)
{
	static const char hex[] = "0123456789abcdef";
	static const char short_esc[0x20] = {
		['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r',
		['\t'] = 't',
	};
	char e[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
	if (c == '"' || c == '\\') {
		e[1] = (char)c;
		buf_append(out, e, 2);
	} else if (short_esc[c]) {
		e[1] = short_esc[c];
		buf_append(out, e, 2);
	} else
		buf_append(out, e, 6);
}

/* Copies each run of plain bytes with one memcpy; a string that needs
 * no escape (the usual worker name or command) in one piece. */
void
jraw_put_str(struct buf *out, const char *s, size_t n)
{
	size_t i = 0, j = put_run(s, 0, n);	/* s[i..j): plain */
	buf_reserve(out, n + 2);
	if (j == n) {
		char *d = buf_tail(out);
		d[0] = '"';
		memcpy(d + 1, s, n);
		d[n + 1] = '"';
		out->len += n + 2;
		return;
	}
	out->data[out->len++] = '"';
	for (;;) {
		buf_append(out, s + i, j - i);
		if (j == n)
			break;
		put_escape(out, (unsigned char)s[j]);
		i = j + 1;
		j = put_run(s, i, n);
	}
	buf_append(out, "\"", 1);
}

size_t
jraw_str_size(const char *s, size_t n)
{
	size_t size = n + 2, i = 0;
	while ((i = put_run(s, i, n)) < n) {
		unsigned char c = (unsigned char)s[i++];
		bool short_esc = c == '"' || c == '\\' || c == '\b' ||
		    c == '\f' || c == '\n' || c == '\r' || c == '\t';
		size += short_esc ? 1 : 5;
	}
	return size;
}

/* The number of decimal digits of u. */
static size_t
digits10(uint64_t u)
{
	static const uint64_t pow10[20] = {
		1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL,
		10000000ULL, 100000000ULL, 1000000000ULL, 10000000000ULL,
		100000000000ULL, 1000000000000ULL, 10000000000000ULL,
		100000000000000ULL, 1000000000000000ULL, 10000000000000000ULL,
		100000000000000000ULL, 1000000000000000000ULL,
		10000000000000000000ULL,
	};
	size_t n = 1;
	while (n < 20 && u >= pow10[n])
		n++;
	return n;
}

/* Digits from the right, straight into the buffer; the magnitude in
 * unsigned arithmetic, so that INT64_MIN needs no special case. */
void
jraw_put_int(struct buf *out, int64_t v)
{
	uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;
	size_t n = (v < 0) + digits10(u);
	buf_reserve(out, n);
	char *p = buf_tail(out) + n;
	do
		*--p = (char)('0' + u % 10);
	while ((u /= 10) != 0);
	if (v < 0)
		*--p = '-';
	out->len += n;
}

static void
put_newline(struct buf *out, int indent)
{
	if (indent < 0)
		indent = 0;	/* unbalanced text: the caller's, not ours to judge */
	buf_reserve(out, (size_t)indent + 1);
	out->data[out->len++] = '\n';
	memset(out->data + out->len, ' ', (size_t)indent);
	out->len += (size_t)indent;
}

/* The end of the string token at p (an opening quote). */
static const char *
string_end(const char *p, const char *end)
{
	for (p++; p < end && *p != '"'; p++)
		if (*p == '\\')
			p++;
	return p < end ? p + 1 : end;
}

/* The end of the scalar token at p (a number, true, false or null). */
static const char *
scalar_end(const char *p, const char *end)
{
	while (p < end && *p != ',' && *p != ':' && *p != ']' && *p != '}' &&
	    (unsigned char)*p > ' ')
		p++;
	return p;
}

/* At an opening bracket p: {} and [] stay on one line, else the first
 * member goes on a new line one level deeper. Returns what follows. */
static const char *
put_open(struct buf *out, const char *p, const char *end, int *depth,
    int step)
{
	const char *q = p + 1;
	buf_append(out, p, 1);
	while (q < end && (unsigned char)*q <= ' ')
		q++;
	if (q < end && *q == (*p == '{' ? '}' : ']')) {
		buf_append(out, q, 1);
		return q + 1;
	}
	put_newline(out, ++*depth * step);
	return p + 1;
}

void
jraw_put_indented(struct buf *out, const char *p, size_t n, int step)
{
	const char *end = p + n, *q;
	int depth = 0;
	while (p < end) {
		switch (*p) {
		case '"':
			q = string_end(p, end);
			buf_append(out, p, (size_t)(q - p));
			p = q;
			break;
		case '{': case '[':
			p = put_open(out, p, end, &depth, step);
			break;
		case '}': case ']':
			put_newline(out, --depth * step);
			buf_append(out, p++, 1);
			break;
		case ',':
			buf_append(out, ",", 1);
			put_newline(out, depth * step);
			p++;
			break;
		case ':':
			buf_append(out, ": ", 2);
			p++;
			break;
		default:
			if ((unsigned char)*p <= ' ') {
				p++;	/* whitespace between tokens */
				break;
			}
			q = scalar_end(p, end);
			buf_append(out, p, (size_t)(q - p));
			p = q;
		}
	}
}

/* The end of the value at p (valid JSON): a string, a scalar, or a
 * container with all it holds. */
static const char *
value_end(const char *p, const char *end)
{
	int depth = 0;
	do {
		if (*p == '"')
			p = string_end(p, end);
		else if (*p == '{' || *p == '[')
			depth++, p++;
		else if (*p == '}' || *p == ']')
			depth--, p++;
		else if ((unsigned char)*p <= ' ' || *p == ',' || *p == ':')
			p++;
		else
			p = scalar_end(p, end);
	} while (depth > 0 && p < end);
	return p;
}

static const char *
skip_blank(const char *p, const char *end)
{
	while (p < end && (unsigned char)*p <= ' ')
		p++;
	return p;
}

/* The type of the value v[0..n) (valid JSON), as jraw_split gives it. */
static enum jraw_type
value_type(const char *v, size_t n)
{
	size_t i = *v == '-';
	switch (*v) {
	case '{':	return JRAW_OBJECT;
	case '[':	return JRAW_ARRAY;
	case '"':	return JRAW_STRING;
	case 't':	return JRAW_TRUE;
	case 'f':	return JRAW_FALSE;
	case 'n':	return JRAW_NULL;
	}
	if (n - i > INT_DIGITS)
		return JRAW_REAL;
	for (; i < n; i++)
		if (v[i] < '0' || v[i] > '9')
			return JRAW_REAL;
	return JRAW_INT;
}

/* One member at p (its key's opening quote) into e; what follows it, or
 * NULL when the text is not a member. */
static const char *
split_member(const char *p, const char *end, struct jraw_member *e)
{
	const char *q = string_end(p, end);
	e->key = p + 1;
	e->key_len = (size_t)(q - p) - 2;
	p = skip_blank(q, end);
	if (p == end || *p != ':')
		return NULL;
	p = skip_blank(p + 1, end);
	if (p == end)
		return NULL;
	q = value_end(p, end);
	e->val = p;
	e->val_len = (size_t)(q - p);
	e->type = value_type(p, e->val_len);
	e->escaped = e->type == JRAW_STRING &&
	    memchr(p, '\\', e->val_len) != NULL;
	return skip_blank(q, end);
}

int
jraw_split(const char *p, size_t n, struct jraw_member *m, int max)
{
	const char *end = p + n;
	int k = 0;

	p = skip_blank(p, end);
	if (p == end || *p != '{')
		return -1;
	p = skip_blank(p + 1, end);
	if (p < end && *p == '}')
		return 0;
	while (p < end && *p == '"' && k < max) {
		if ((p = split_member(p, end, &m[k++])) == NULL || p == end)
			return -1;
		if (*p == '}')
			return k;
		if (*p != ',')
			return -1;
		p = skip_blank(p + 1, end);
	}
	return -1;
}

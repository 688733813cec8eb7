#include "proto/jraw.h"

#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* The scanner makes one pass over the text with no allocation and no
 * recursion: the containers open below the top-level object live on a
 * small stack in struct scan, with the keys of each open object for the
 * duplicate check. The top level's keys are checked against the members
 * found so far. Every limit below is where the scanner stops deciding and
 * returns -1; none of them is a limit of jansson's. */

#define KEY_STACK	(8 * JRAW_MAX_KEYS)	/* keys of all open nested objects */
#define INT_DIGITS	18	/* fits an int64_t: strtoll cannot overflow */
#define REAL_DIGITS	200	/* before the point, and with EXP_DIGITS ... */
#define EXP_DIGITS	2	/* ... |x| < 1e299: strtod cannot overflow */

/* The scanner's steps are forced inline, so that jraw_object and
 * scan_nested each run as one function (17 % fewer instructions). */
#define STEP	static inline __attribute__((always_inline))

#define ONES	0x0101010101010101ULL
#define HIGHS	0x8080808080808080ULL

struct span {
	const char	*p;
	size_t		 n;
};

struct scan {
	const char	*p;		/* the next byte */
	const char	*end;
	bool		 escaped;	/* the last string held a backslash */
	int		 depth;		/* containers open below the top level */
	uint64_t	 objs;		/* bit d-1: the one at depth d is an object */
	int		 nkeys;		/* used entries of keys */
	int		 base[JRAW_MAX_DEPTH];	/* an open object's first key */
	struct span	 keys[KEY_STACK];
};

/* What the container machine does next. */
enum step {
	ST_ERR = -1,
	ST_DONE,	/* the outermost container closed */
	ST_VALUE,	/* a value is expected at p */
	ST_KEY,		/* a key, its colon and then a value */
	ST_NEXT,	/* a comma or the closing bracket */
};

#define WS_BITS	(1ULL << ' ' | 1ULL << '\t' | 1ULL << '\n' | 1ULL << '\r')

/* Skips JSON whitespace; most calls find none, so test that first. */
STEP void
skip_ws(struct scan *s)
{
	const char *p = s->p, *end = s->end;
	while (p < end && (unsigned char)*p <= ' ' && (WS_BITS >> *p & 1))
		p++;
	s->p = p;
}

/* Consumes the byte c if it is next. */
STEP bool
eat(struct scan *s, char c)
{
	if (s->p == s->end || *s->p != c)
		return false;
	s->p++;
	return true;
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
 * and the closing quote, as far as the string goes. */
static __attribute__((noinline)) int
scan_string_rest(struct scan *s, const char *p)
{
	const char *end = s->end;
	for (;;) {
		if (p == end)
			return -1;
		if (*p == '"')
			break;
		if (*p == '\\') {
			s->escaped = true;
			p = skip_escape(p, end);
		} else if ((unsigned char)*p >= 0x80)
			p = skip_utf8(p, end);
		else
			return -1;	/* a control byte */
		if (p == NULL)
			return -1;
		p = skip_plain(p, end);
	}
	s->p = p + 1;
	return 0;
}

/* Scans the string whose opening quote is at s->p; sets s->escaped. Most
 * strings are plain ASCII to their closing quote: that path is inline. */
STEP int
scan_string(struct scan *s)
{
	const char *p = skip_plain(s->p + 1, s->end);
	s->escaped = false;
	if (p < s->end && *p == '"') {
		s->p = p + 1;
		return 0;
	}
	return scan_string_rest(s, p);
}

/* Scans a key (a string without escapes, so that its raw bytes are what
 * jansson compares) into k. */
STEP int
scan_key(struct scan *s, struct span *k)
{
	if (s->p == s->end || *s->p != '"')
		return -1;
	k->p = s->p + 1;
	if (scan_string(s) < 0 || s->escaped)
		return -1;
	k->n = (size_t)(s->p - 1 - k->p);
	return 0;
}

static inline bool
same_key(const char *a, size_t an, const char *b, size_t bn)
{
	return an == bn && memcmp(a, b, an) == 0;
}

STEP const char *
skip_digits(const char *p, const char *end)
{
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

/* Scans a number as RFC 8259 writes it, within the limits above. */
STEP int
scan_number(struct scan *s, enum jraw_type *t)
{
	const char *p = s->p, *end = s->end;
	if (*p == '-')
		p++;
	const char *digits = p;
	if (p < end && *p == '0')
		p++;
	else
		p = skip_digits(p, end);
	if (p == digits)
		return -1;
	ptrdiff_t nint = p - digits;
	if (p == end || (*p != '.' && *p != 'e' && *p != 'E')) {
		*t = JRAW_INT;
		s->p = p;
		return nint <= INT_DIGITS ? 0 : -1;
	}
	if (nint > REAL_DIGITS || (p = skip_real_tail(p, end)) == NULL)
		return -1;
	*t = JRAW_REAL;
	s->p = p;
	return 0;
}

STEP int
scan_literal(struct scan *s, const char *lit, size_t len)
{
	if ((size_t)(s->end - s->p) < len || memcmp(s->p, lit, len) != 0)
		return -1;
	s->p += len;
	return 0;
}

/* Scans a string, number or literal at s->p (not at the end). */
STEP int
scan_scalar(struct scan *s, enum jraw_type *t)
{
	switch (*s->p) {
	case '"':
		*t = JRAW_STRING;
		return scan_string(s);
	case 't':
		*t = JRAW_TRUE;
		return scan_literal(s, "true", 4);
	case 'f':
		*t = JRAW_FALSE;
		return scan_literal(s, "false", 5);
	case 'n':
		*t = JRAW_NULL;
		return scan_literal(s, "null", 4);
	default:
		return scan_number(s, t);
	}
}

STEP bool
in_object(const struct scan *s)
{
	return s->objs >> (s->depth - 1) & 1;
}

/* Closes the innermost container (its bracket consumed). */
STEP enum step
pop(struct scan *s)
{
	if (in_object(s))
		s->nkeys = s->base[s->depth - 1];
	s->depth--;
	return s->depth == 0 ? ST_DONE : ST_NEXT;
}

/* Opens the container whose bracket is at s->p. The top-level object
 * counts as one level of JRAW_MAX_DEPTH. */
STEP enum step
push(struct scan *s)
{
	if (s->depth >= JRAW_MAX_DEPTH - 1)
		return ST_ERR;
	bool obj = *s->p++ == '{';
	uint64_t bit = (uint64_t)1 << s->depth;
	if (obj) {
		s->objs |= bit;
		s->base[s->depth] = s->nkeys;
	} else
		s->objs &= ~bit;
	s->depth++;
	skip_ws(s);
	if (eat(s, obj ? '}' : ']'))
		return pop(s);
	return obj ? ST_KEY : ST_VALUE;
}

/* A value inside a container. */
STEP enum step
on_value(struct scan *s)
{
	enum jraw_type t;
	if (s->p == s->end)
		return ST_ERR;
	if (*s->p == '{' || *s->p == '[')
		return push(s);
	return scan_scalar(s, &t) < 0 ? ST_ERR : ST_NEXT;
}

/* Records the key k of the innermost object, unless it is there already
 * or the object has too many keys to check. */
STEP int
add_key(struct scan *s, struct span k)
{
	int first = s->base[s->depth - 1];
	if (s->nkeys - first >= JRAW_MAX_KEYS || s->nkeys >= KEY_STACK)
		return -1;
	for (int i = first; i < s->nkeys; i++)
		if (same_key(s->keys[i].p, s->keys[i].n, k.p, k.n))
			return -1;
	s->keys[s->nkeys++] = k;
	return 0;
}

/* A key and its colon inside a nested object. */
STEP enum step
on_key(struct scan *s)
{
	struct span k;
	if (scan_key(s, &k) < 0 || add_key(s, k) < 0)
		return ST_ERR;
	skip_ws(s);
	if (!eat(s, ':'))
		return ST_ERR;
	skip_ws(s);
	return ST_VALUE;
}

/* After a value inside a container: a comma or the closing bracket. */
STEP enum step
on_next(struct scan *s)
{
	bool obj = in_object(s);
	skip_ws(s);
	if (eat(s, ',')) {
		skip_ws(s);
		return obj ? ST_KEY : ST_VALUE;
	}
	if (eat(s, obj ? '}' : ']'))
		return pop(s);
	return ST_ERR;
}

/* Scans the container at s->p to its closing bracket. */
static int
scan_nested(struct scan *s)
{
	enum step st = push(s);
	while (st > ST_DONE) {
		switch (st) {
		case ST_VALUE:
			st = on_value(s);
			break;
		case ST_KEY:
			st = on_key(s);
			break;
		default:
			st = on_next(s);
			break;
		}
	}
	return st == ST_DONE ? 0 : -1;
}

/* Scans a top-level member's value, setting its type. */
STEP int
scan_value(struct scan *s, enum jraw_type *t)
{
	if (s->p == s->end)
		return -1;
	switch (*s->p) {
	case '{':
		*t = JRAW_OBJECT;
		return scan_nested(s);
	case '[':
		*t = JRAW_ARRAY;
		return scan_nested(s);
	default:
		return scan_scalar(s, t);
	}
}

/* Scans one top-level member into m[k], refusing a key of m[0..k). */
STEP int
scan_member(struct scan *s, struct jraw_member *m, int k)
{
	struct jraw_member *e = &m[k];
	struct span key;
	if (scan_key(s, &key) < 0)
		return -1;
	for (int i = 0; i < k; i++)
		if (same_key(m[i].key, m[i].key_len, key.p, key.n))
			return -1;
	skip_ws(s);
	if (!eat(s, ':'))
		return -1;
	skip_ws(s);
	e->key = key.p;
	e->key_len = key.n;
	e->val = s->p;
	if (scan_value(s, &e->type) < 0)
		return -1;
	e->val_len = (size_t)(s->p - e->val);
	e->escaped = e->type == JRAW_STRING && s->escaped;
	return 0;
}

int
jraw_object(const char *p, size_t n, struct jraw_member *m, int max)
{
	struct scan s;
	int k = 0;
	if (n == 0)
		return -1;
	s.p = p;
	s.end = p + n;
	s.depth = s.nkeys = 0;
	s.objs = 0;
	skip_ws(&s);
	if (!eat(&s, '{'))
		return -1;
	skip_ws(&s);
	if (!eat(&s, '}')) {
		for (;;) {
			if (k >= max || scan_member(&s, m, k) < 0)
				return -1;
			k++;
			skip_ws(&s);
			if (eat(&s, '}'))
				break;
			if (!eat(&s, ','))
				return -1;
			skip_ws(&s);
		}
	}
	skip_ws(&s);
	return s.p == s.end ? k : -1;
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

/* Copies each run of plain bytes with one memcpy. */
void
jraw_put_str(struct buf *out, const char *s, size_t n)
{
	size_t i = 0;
	buf_reserve(out, n + 2);
	out->data[out->len++] = '"';
	while (i < n) {
		size_t j = put_run(s, i, n);
		buf_append(out, s + i, j - i);
		if (j == n)
			break;
		put_escape(out, (unsigned char)s[j]);
		i = j + 1;
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

/* Digits from the right into a small array; the magnitude in unsigned
 * arithmetic, so that INT64_MIN needs no special case. */
void
jraw_put_int(struct buf *out, int64_t v)
{
	char d[24];
	char *p = d + sizeof d;
	uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;
	do
		*--p = (char)('0' + u % 10);
	while ((u /= 10) != 0);
	if (v < 0)
		*--p = '-';
	buf_append(out, p, (size_t)(d + sizeof d - p));
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

// SPDX-License-Identifier: Apache-2.0
// keyward-allowlist: loads the exec-allowlist LSM program (allowlist.bpf.c), fills its map,
// pins it under /sys/fs/bpf/keyward, and measures its state as docs/allowlist-state.md
// specifies: 91-byte record, SHA-256 digest extended into the allowlist PCR (sha256 bank)
// with tpm2_pcrextend, record appended to /run/keyward/allowlist.log.
//
//   keyward-allowlist load --allowlist FILE [--mode enforce|audit] [common]
//   keyward-allowlist status [--print-state] [common]
//   keyward-allowlist update-denials [common]     re-measure if the state changed
//   keyward-allowlist unload [--pin-dir DIR]
//   keyward-allowlist encode --allowlist FILE --mode M --tag HEX16 --denials N --load-time N
//   common: [--pcr N | --no-pcr] [--log PATH] [--pin-dir DIR] [--tcti TCTI]
//
// Allowlist file: sha256sum(1) format, one lowercase/uppercase 64-hex digest per line,
// optionally followed by whitespace and a path (informational); '#' lines and blank lines
// are ignored; any other line is an error (fail closed).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <openssl/evp.h>

#include "allowlist.skel.h"

#define DIGEST_LEN 32
#define RECORD_LEN 91
#define LABEL "keyward-allowlist-state-v1" /* docs/allowlist-state.md: 26 bytes */
#define MAX_ENTRIES 65536                  /* = KW_MAX_ENTRIES in allowlist.bpf.c */
#define MODE_ENFORCE 1
#define MODE_AUDIT 2

struct opts {
	const char *allowlist;
	const char *log;
	const char *pin_dir;
	const char *tcti;
	const char *tag_hex;
	int pcr; /* -1: do not extend */
	int mode;
	int print_state;
	uint64_t denials;
	uint64_t load_time;
};

struct state {
	uint8_t allowlist_digest[DIGEST_LEN];
	uint8_t mode;
	uint8_t tag[8];
	uint64_t denials;
	uint64_t load_time;
	size_t entries;
};

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("keyward-allowlist: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static void sha256(const uint8_t *data, size_t len, uint8_t out[DIGEST_LEN])
{
	unsigned int n = 0;
	if (!EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) || n != DIGEST_LEN)
		die("SHA-256 failed");
}

static void to_hex(const uint8_t *b, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[b[i] >> 4];
		out[2 * i + 1] = hx[b[i] & 15];
	}
	out[2 * n] = 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Exactly 2n hex digits -> n bytes; 0 on success. */
static int from_hex(const char *s, size_t slen, uint8_t *out, size_t n)
{
	if (slen != 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int h = hexval(s[2 * i]), l = hexval(s[2 * i + 1]);
		if (h < 0 || l < 0)
			return -1;
		out[i] = (uint8_t)(h << 4 | l);
	}
	return 0;
}

static int cmp_digest(const void *a, const void *b)
{
	return memcmp(a, b, DIGEST_LEN);
}

/* Sorts ascending and removes duplicates in place; returns the distinct count. */
static size_t sort_unique(uint8_t (*d)[DIGEST_LEN], size_t n)
{
	size_t k = 0;
	qsort(d, n, DIGEST_LEN, cmp_digest);
	for (size_t i = 0; i < n; i++)
		if (k == 0 || memcmp(d[k - 1], d[i], DIGEST_LEN) != 0)
			memmove(d[k++], d[i], DIGEST_LEN);
	return k;
}

/* docs/allowlist-state.md "Allowlist digest": SHA-256 over the sorted distinct digests. */
static void allowlist_digest(uint8_t (*d)[DIGEST_LEN], size_t n, uint8_t out[DIGEST_LEN])
{
	sha256((const uint8_t *)d, n * DIGEST_LEN, out);
}

static size_t read_allowlist(const char *path, uint8_t (**out)[DIGEST_LEN])
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0, n = 0, alloc = 64, lineno = 0;
	ssize_t len;
	uint8_t(*d)[DIGEST_LEN];

	if (!f)
		die("cannot open allowlist %s: %s", path, strerror(errno));
	d = malloc(alloc * DIGEST_LEN);
	if (!d)
		die("out of memory");
	while ((len = getline(&line, &cap, f)) >= 0) {
		lineno++;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = 0;
		if (len == 0 || line[0] == '#')
			continue;
		if (len < 64 || (len > 64 && line[64] != ' ' && line[64] != '\t'))
			die("%s:%zu: expected a 64-hex-digit SHA-256 digest", path, lineno);
		if (n == MAX_ENTRIES)
			die("%s: more than %d entries", path, MAX_ENTRIES);
		if (n == alloc) {
			alloc *= 2;
			d = realloc(d, alloc * DIGEST_LEN);
			if (!d)
				die("out of memory");
		}
		if (from_hex(line, 64, d[n], DIGEST_LEN) != 0)
			die("%s:%zu: expected a 64-hex-digit SHA-256 digest", path, lineno);
		n++;
	}
	free(line);
	fclose(f);
	*out = d;
	return sort_unique(d, n);
}

static void put_u64be(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/* docs/allowlist-state.md "State record (91 bytes)". */
static void encode_record(const struct state *s, uint8_t rec[RECORD_LEN])
{
	memset(rec, 0, RECORD_LEN); /* separator at 26 and reserved 84..90 stay zero */
	memcpy(rec, LABEL, 26);
	memcpy(rec + 27, s->allowlist_digest, DIGEST_LEN);
	rec[59] = s->mode;
	memcpy(rec + 60, s->tag, 8);
	put_u64be(rec + 68, s->denials);
	put_u64be(rec + 76, s->load_time);
}

static void print_state(const struct state *s, int json)
{
	uint8_t rec[RECORD_LEN], dig[DIGEST_LEN];
	char rh[2 * RECORD_LEN + 1], dh[2 * DIGEST_LEN + 1], ah[2 * DIGEST_LEN + 1], th[17];

	encode_record(s, rec);
	sha256(rec, RECORD_LEN, dig);
	to_hex(rec, RECORD_LEN, rh);
	to_hex(dig, DIGEST_LEN, dh);
	if (!json) {
		printf("record %s\ndigest %s\n", rh, dh);
		return;
	}
	to_hex(s->allowlist_digest, DIGEST_LEN, ah);
	to_hex(s->tag, 8, th);
	printf("{\"mode\":\"%s\",\"entries\":%zu,\"allowlistDigest\":\"%s\",\"progTag\":\"%s\","
	       "\"denials\":%llu,\"loadTime\":%llu,\"record\":\"%s\",\"stateDigest\":\"%s\"}\n",
	       s->mode == MODE_ENFORCE ? "enforce" : s->mode == MODE_AUDIT ? "audit" : "unknown",
	       s->entries, ah, th, (unsigned long long)s->denials, (unsigned long long)s->load_time,
	       rh, dh);
}

static void pin_path(char *buf, size_t n, const char *dir, const char *name)
{
	if ((size_t)snprintf(buf, n, "%s/%s", dir, name) >= n)
		die("pin path too long");
}

/* Reads the live state from the pinned program and maps (what the kernel enforces now). */
static void read_live_state(const char *pin_dir, struct state *s)
{
	char p[4096];
	int prog, cfg, den, allow;
	uint32_t zero = 0, mode = 0;
	struct bpf_prog_info info;
	uint32_t info_len = sizeof(info);
	uint8_t key[DIGEST_LEN], next[DIGEST_LEN], (*d)[DIGEST_LEN];
	size_t n = 0;
	void *prev = NULL;

	memset(s, 0, sizeof(*s));
	pin_path(p, sizeof(p), pin_dir, "prog");
	if ((prog = bpf_obj_get(p)) < 0)
		die("no allowlist program pinned at %s (not loaded?): %s", p, strerror(errno));
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(prog, &info, &info_len))
		die("bpf_obj_get_info_by_fd: %s", strerror(errno));
	memcpy(s->tag, info.tag, 8);
	s->load_time = info.load_time; /* ns since boot (kernel: ktime_get_boottime_ns) */
	close(prog);

	pin_path(p, sizeof(p), pin_dir, "config");
	if ((cfg = bpf_obj_get(p)) < 0 || bpf_map_lookup_elem(cfg, &zero, &mode))
		die("cannot read %s: %s", p, strerror(errno));
	s->mode = (uint8_t)mode;
	close(cfg);
	pin_path(p, sizeof(p), pin_dir, "denials");
	if ((den = bpf_obj_get(p)) < 0 || bpf_map_lookup_elem(den, &zero, &s->denials))
		die("cannot read %s: %s", p, strerror(errno));
	close(den);

	pin_path(p, sizeof(p), pin_dir, "allowed");
	if ((allow = bpf_obj_get(p)) < 0)
		die("cannot open %s: %s", p, strerror(errno));
	d = malloc((size_t)MAX_ENTRIES * DIGEST_LEN);
	if (!d)
		die("out of memory");
	while (n < MAX_ENTRIES && bpf_map_get_next_key(allow, prev, next) == 0) {
		memcpy(d[n++], next, DIGEST_LEN);
		memcpy(key, next, DIGEST_LEN);
		prev = key;
	}
	close(allow);
	s->entries = sort_unique(d, n);
	allowlist_digest(d, s->entries, s->allowlist_digest);
	free(d);
}

/* Last record in the log, if any; returns 1 when found. */
static int last_logged_record(FILE *log, uint8_t rec[RECORD_LEN], long *seq)
{
	char *line = NULL, *r;
	size_t cap = 0;
	int found = 0;

	*seq = -1;
	rewind(log);
	while (getline(&line, &cap, log) >= 0) {
		if (!(r = strstr(line, "\"record\":\"")))
			continue;
		r += 10;
		if (from_hex(r, strcspn(r, "\""), rec, RECORD_LEN) == 0) {
			found = 1;
			(*seq)++;
		}
	}
	free(line);
	return found;
}

static void extend_pcr(const struct opts *o, const uint8_t dig[DIGEST_LEN])
{
	char spec[128], dh[2 * DIGEST_LEN + 1];
	int status;
	pid_t pid;

	to_hex(dig, DIGEST_LEN, dh);
	snprintf(spec, sizeof(spec), "%d:sha256=%s", o->pcr, dh);
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		if (o->tcti)
			setenv("TPM2TOOLS_TCTI", o->tcti, 1);
		execlp("tpm2_pcrextend", "tpm2_pcrextend", spec, (char *)NULL);
		fprintf(stderr, "keyward-allowlist: exec tpm2_pcrextend: %s\n", strerror(errno));
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die("tpm2_pcrextend %s failed", spec);
}

static void mkdirs(const char *path)
{
	char buf[4096];
	size_t n = strlen(path);
	if (n >= sizeof(buf))
		die("path too long");
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++)
		if (*p == '/') {
			*p = 0;
			if (mkdir(buf, 0755) && errno != EEXIST)
				die("mkdir %s: %s", buf, strerror(errno));
			*p = '/';
		}
}

/* Extend then append, under an exclusive lock on the log so PCR order equals log order.
 * Either step failing leaves PCR and log out of step, which the broker's replay denies. */
static void measure(const struct opts *o, const struct state *s, int only_if_changed)
{
	uint8_t rec[RECORD_LEN], last[RECORD_LEN], dig[DIGEST_LEN];
	char rh[2 * RECORD_LEN + 1];
	long seq;
	int fd, have_last;
	FILE *log;

	encode_record(s, rec);
	sha256(rec, RECORD_LEN, dig);
	mkdirs(o->log);
	if ((fd = open(o->log, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) < 0)
		die("open %s: %s", o->log, strerror(errno));
	if (flock(fd, LOCK_EX))
		die("flock %s: %s", o->log, strerror(errno));
	if (!(log = fdopen(fd, "a+")))
		die("fdopen: %s", strerror(errno));
	have_last = last_logged_record(log, last, &seq);
	if (only_if_changed && have_last && memcmp(last, rec, RECORD_LEN) == 0) {
		fclose(log);
		printf("unchanged seq=%ld denials=%llu\n", seq, (unsigned long long)s->denials);
		return;
	}
	if (o->pcr >= 0)
		extend_pcr(o, dig);
	to_hex(rec, RECORD_LEN, rh);
	fprintf(log, "{\"seq\":%ld,\"record\":\"%s\"}\n", seq + 1, rh);
	if (fflush(log) || fsync(fd))
		die("append %s: %s", o->log, strerror(errno));
	fclose(log);
	if (only_if_changed)
		printf("measured seq=%ld denials=%llu\n", seq + 1, (unsigned long long)s->denials);
}

static int libbpf_quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return level == LIBBPF_DEBUG ? 0 : vfprintf(stderr, fmt, ap);
}

static void cmd_load(const struct opts *o)
{
	struct allowlist_bpf *skel;
	struct bpf_link *link;
	struct state s;
	uint8_t(*d)[DIGEST_LEN], one = 1;
	uint32_t zero = 0, mode = (uint32_t)o->mode;
	char p[4096];
	size_t n;
	int allow, cfg, den;

	if (!o->allowlist)
		die("load needs --allowlist FILE");
	n = read_allowlist(o->allowlist, &d);
	mkdirs(o->pin_dir);
	if (mkdir(o->pin_dir, 0700) && errno != EEXIST)
		die("mkdir %s: %s", o->pin_dir, strerror(errno));
	pin_path(p, sizeof(p), o->pin_dir, "prog");
	if (access(p, F_OK) == 0)
		die("already loaded (%s exists); unload first", p);

	if (!(skel = allowlist_bpf__open_and_load()))
		die("loading the BPF program failed: %s", strerror(errno));
	allow = bpf_map__fd(skel->maps.kw_allowed);
	cfg = bpf_map__fd(skel->maps.kw_config);
	den = bpf_map__fd(skel->maps.kw_denials);
	for (size_t i = 0; i < n; i++)
		if (bpf_map_update_elem(allow, d[i], &one, BPF_NOEXIST))
			die("filling the allowlist map: %s", strerror(errno));
	if (bpf_map_update_elem(cfg, &zero, &mode, BPF_ANY))
		die("setting the mode: %s", strerror(errno));
	/* Freeze the maps against syscall writes: the allowlist, mode and counter can then
	 * change only by unloading and loading again, which is measured. */
	if (bpf_map_freeze(allow) || bpf_map_freeze(cfg) || bpf_map_freeze(den))
		die("bpf_map_freeze: %s", strerror(errno));

#define PIN(obj, fn, name)                                                  \
	do {                                                                    \
		pin_path(p, sizeof(p), o->pin_dir, name);                           \
		if (fn(obj, p))                                                     \
			die("pinning %s: %s", p, strerror(errno));                      \
	} while (0)
	PIN(skel->maps.kw_allowed, bpf_map__pin, "allowed");
	PIN(skel->maps.kw_config, bpf_map__pin, "config");
	PIN(skel->maps.kw_denials, bpf_map__pin, "denials");
	PIN(skel->progs.keyward_exec_allowlist, bpf_program__pin, "prog");
	link = bpf_program__attach_lsm(skel->progs.keyward_exec_allowlist);
	if (!link)
		die("attaching the LSM program: %s", strerror(errno));
	PIN(link, bpf_link__pin, "link");
#undef PIN

	read_live_state(o->pin_dir, &s);
	if (s.entries != n)
		die("map holds %zu entries, file has %zu", s.entries, n);
	measure(o, &s, 0);
	print_state(&s, 1);
	free(d);
	bpf_link__disconnect(link); /* the pin keeps it attached after we exit */
	bpf_link__destroy(link);
	allowlist_bpf__destroy(skel);
}

static void cmd_unload(const struct opts *o)
{
	static const char *names[] = { "link", "prog", "allowed", "config", "denials" };
	char p[4096];
	int missing = 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		pin_path(p, sizeof(p), o->pin_dir, names[i]);
		if (unlink(p) && errno == ENOENT)
			missing++;
	}
	rmdir(o->pin_dir);
	printf(missing == 5 ? "not loaded\n" : "unloaded\n");
}

static void cmd_encode(const struct opts *o)
{
	struct state s;
	uint8_t(*d)[DIGEST_LEN];

	memset(&s, 0, sizeof(s));
	if (!o->allowlist || !o->tag_hex || !o->mode)
		die("encode needs --allowlist, --mode, --tag, --denials, --load-time");
	s.entries = read_allowlist(o->allowlist, &d);
	allowlist_digest(d, s.entries, s.allowlist_digest);
	free(d);
	if (from_hex(o->tag_hex, strlen(o->tag_hex), s.tag, 8))
		die("--tag must be 16 hex digits");
	s.mode = (uint8_t)o->mode;
	s.denials = o->denials;
	s.load_time = o->load_time;
	print_state(&s, !o->print_state);
}

static uint64_t parse_u64(const char *v, const char *name)
{
	char *end;
	errno = 0;
	unsigned long long x = strtoull(v, &end, 10);
	if (errno || *end || !*v || *v == '-')
		die("%s must be a decimal u64", name);
	return x;
}

static void usage(void)
{
	fputs("usage: keyward-allowlist load|status|update-denials|unload|encode [options]\n"
	      "  load --allowlist FILE [--mode enforce|audit]   (default enforce)\n"
	      "  status [--print-state]   update-denials   unload\n"
	      "  encode --allowlist FILE --mode M --tag HEX16 --denials N --load-time N [--print-state]\n"
	      "  common: --pcr N (default 15) | --no-pcr, --log PATH (default "
	      "/run/keyward/allowlist.log),\n"
	      "          --pin-dir DIR (default /sys/fs/bpf/keyward), --tcti TCTI\n",
	      stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	struct opts o = { .log = "/run/keyward/allowlist.log",
			  .pin_dir = "/sys/fs/bpf/keyward",
			  .pcr = 15,
			  .mode = 0 };
	const char *cmd;
	struct state s;

	if (argc < 2)
		usage();
	cmd = argv[1];
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (strcmp(a, name) == 0 && (v || (die("%s needs a value", name), 0)) && ++i)
		if (ARG("--allowlist"))
			o.allowlist = v;
		else if (ARG("--log"))
			o.log = v;
		else if (ARG("--pin-dir"))
			o.pin_dir = v;
		else if (ARG("--tcti"))
			o.tcti = v;
		else if (ARG("--tag"))
			o.tag_hex = v;
		else if (ARG("--denials"))
			o.denials = parse_u64(v, "--denials");
		else if (ARG("--load-time"))
			o.load_time = parse_u64(v, "--load-time");
		else if (ARG("--pcr")) {
			o.pcr = (int)parse_u64(v, "--pcr");
			if (o.pcr > 23)
				die("--pcr must be 0..23");
		} else if (ARG("--mode")) {
			if (!strcmp(v, "enforce") || !strcmp(v, "1"))
				o.mode = MODE_ENFORCE;
			else if (!strcmp(v, "audit") || !strcmp(v, "2"))
				o.mode = MODE_AUDIT;
			else
				die("--mode must be enforce or audit");
		} else if (!strcmp(a, "--no-pcr"))
			o.pcr = -1;
		else if (!strcmp(a, "--print-state"))
			o.print_state = 1;
		else
			usage();
#undef ARG
	}
	libbpf_set_print(libbpf_quiet);
	if (!strcmp(cmd, "load")) {
		if (!o.mode)
			o.mode = MODE_ENFORCE;
		cmd_load(&o);
	} else if (!strcmp(cmd, "status")) {
		read_live_state(o.pin_dir, &s);
		print_state(&s, !o.print_state);
	} else if (!strcmp(cmd, "update-denials")) {
		read_live_state(o.pin_dir, &s);
		measure(&o, &s, 1);
	} else if (!strcmp(cmd, "unload"))
		cmd_unload(&o);
	else if (!strcmp(cmd, "encode"))
		cmd_encode(&o);
	else
		usage();
	return 0;
}

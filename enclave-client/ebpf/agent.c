// SPDX-License-Identifier: Apache-2.0
// keyward-allowlist: loads the exec-allowlist LSM program (allowlist.bpf.c), fills its map,
// pins it under /sys/fs/bpf/keyward, and measures its state as docs/allowlist-state.md
// specifies: 91-byte record, SHA-256 digest extended into the allowlist PCR (sha256 bank)
// with tpm2_pcrextend, record appended to /run/keyward/allowlist.log.
//
//   keyward-allowlist load --allowlist FILE [--mode enforce|audit] [common]
//   keyward-allowlist status [--print-state] [common]
//   keyward-allowlist update-denials [common]     re-measure if the state changed
//   keyward-allowlist unload [common]            measures an "unloaded" record, then unpins
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
#include <sys/sysmacros.h>
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
#define MODE_UNLOADED 0 /* the record measured by unload before anything is removed */
#define MODE_ENFORCE 1
#define MODE_AUDIT 2
#define NR_MAPS 4 /* = KW_NR_MAPS */

/* = struct kw_config in allowlist.bpf.c */
struct kw_config {
	uint32_t mode;
	uint32_t reserved;
	uint64_t agent_ino;
	uint64_t agent_dev;
	uint32_t map_ids[NR_MAPS];
};

/* Pinned maps, in kw_config.map_ids order; programs and their links. */
static const char *const MAP_PINS[NR_MAPS] = { "allowed", "config", "denials", "cgroup-denials" };
#define NR_PROGS 4
static const char *const PROG_PINS[NR_PROGS] = { "prog", "prog-mmap", "prog-mprotect", "prog-bpf-map" };
static const char *const LINK_PINS[NR_PROGS] = { "link", "link-mmap", "link-mprotect", "link-bpf-map" };

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

struct cgroup_count {
	uint64_t id;
	uint64_t denials;
};

struct state {
	uint8_t allowlist_digest[DIGEST_LEN];
	uint8_t mode;
	uint8_t tag[8];
	uint64_t denials;
	uint64_t load_time;
	size_t entries;
	/* Not part of the record: denials per cgroup id (status only), and the count of those
	 * the kernel could not attribute because denials_by_cgroup was full. */
	struct cgroup_count *cgroups;
	size_t ncgroups;
	uint64_t cgroup_overflow;
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
	       "\"denials\":%llu,\"loadTime\":%llu,\"record\":\"%s\",\"stateDigest\":\"%s\","
	       "\"cgroupOverflow\":%llu,\"denialsByCgroup\":{",
	       s->mode == MODE_ENFORCE  ? "enforce"
	       : s->mode == MODE_AUDIT  ? "audit"
	       : s->mode == MODE_UNLOADED ? "unloaded"
					  : "unknown",
	       s->entries, ah, th, (unsigned long long)s->denials, (unsigned long long)s->load_time,
	       rh, dh, (unsigned long long)s->cgroup_overflow);
	/* cgroup ids as strings: they are u64 and JSON numbers are not */
	for (size_t i = 0; i < s->ncgroups; i++)
		printf("%s\"%llu\":%llu", i ? "," : "", (unsigned long long)s->cgroups[i].id,
		       (unsigned long long)s->cgroups[i].denials);
	printf("}}\n");
}

static void pin_path(char *buf, size_t n, const char *dir, const char *name)
{
	if ((size_t)snprintf(buf, n, "%s/%s", dir, name) >= n)
		die("pin path too long");
}

/* A pinned map, read-only: kw_bpf_map (allowlist.bpf.c) refuses writable descriptors of
 * these maps, and any descriptor to a process other than this agent's executable. */
static int open_map_ro(const char *pin_dir, const char *name)
{
	LIBBPF_OPTS(bpf_obj_get_opts, ro, .file_flags = BPF_F_RDONLY);
	char p[4096];
	int fd;

	pin_path(p, sizeof(p), pin_dir, name);
	if ((fd = bpf_obj_get_opts(p, &ro)) < 0)
		die("cannot open %s: %s", p, strerror(errno));
	return fd;
}

static uint32_t map_id(int fd)
{
	struct bpf_map_info info;
	uint32_t len = sizeof(info);

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		die("bpf_obj_get_info_by_fd (map): %s", strerror(errno));
	return info.id;
}

static int has_id(const uint32_t *ids, size_t n, uint32_t id)
{
	for (size_t i = 0; i < n; i++)
		if (ids[i] == id)
			return 1;
	return 0;
}

/* Before anything is measured: each pinned program is still attached through its pinned link
 * (a tracing link cannot be detached, so it is attached while it exists), and the maps every
 * program uses are exactly the pinned maps whose ids the agent wrote into kw_config at load.
 * A pin replaced by another map, or a link removed, stops the agent: nothing is measured, so
 * no fresh state exists for the broker to admit. `prog_fd` gets the exec program's fd. */
static void check_pinned(const char *pin_dir, int map_fds[NR_MAPS], int *prog_fd)
{
	struct kw_config cfg;
	uint32_t zero = 0, pinned[NR_MAPS], used[16], all_used[NR_MAPS] = { 0 };
	char p[4096];

	for (int i = 0; i < NR_MAPS; i++) {
		map_fds[i] = open_map_ro(pin_dir, MAP_PINS[i]);
		pinned[i] = map_id(map_fds[i]);
	}
	if (bpf_map_lookup_elem(map_fds[1], &zero, &cfg))
		die("cannot read the config map: %s", strerror(errno));
	if (memcmp(cfg.map_ids, pinned, sizeof(pinned)) != 0)
		die("pinned maps are not the ones loaded (ids %u %u %u %u, loaded %u %u %u %u)",
		    pinned[0], pinned[1], pinned[2], pinned[3], cfg.map_ids[0], cfg.map_ids[1],
		    cfg.map_ids[2], cfg.map_ids[3]);
	for (int i = 0; i < NR_PROGS; i++) {
		struct bpf_prog_info pi;
		struct bpf_link_info li;
		uint32_t plen = sizeof(pi), llen = sizeof(li);
		int prog, link;

		pin_path(p, sizeof(p), pin_dir, PROG_PINS[i]);
		if ((prog = bpf_obj_get(p)) < 0)
			die("no allowlist program pinned at %s (not loaded?): %s", p, strerror(errno));
		memset(&pi, 0, sizeof(pi));
		pi.nr_map_ids = sizeof(used) / sizeof(used[0]);
		pi.map_ids = (uint64_t)(uintptr_t)used;
		if (bpf_obj_get_info_by_fd(prog, &pi, &plen))
			die("bpf_obj_get_info_by_fd (prog): %s", strerror(errno));
		if (pi.nr_map_ids > sizeof(used) / sizeof(used[0]))
			die("%s uses %u maps", p, pi.nr_map_ids);
		for (uint32_t k = 0; k < pi.nr_map_ids; k++) {
			if (!has_id(pinned, NR_MAPS, used[k]))
				die("%s uses map id %u, which is not a pinned map", p, used[k]);
			for (int m = 0; m < NR_MAPS; m++)
				all_used[m] |= pinned[m] == used[k];
		}
		pin_path(p, sizeof(p), pin_dir, LINK_PINS[i]);
		memset(&li, 0, sizeof(li));
		if ((link = bpf_obj_get(p)) < 0 || bpf_obj_get_info_by_fd(link, &li, &llen))
			die("program %s is not attached (no link at %s): %s", PROG_PINS[i], p,
			    strerror(errno));
		if (li.prog_id != pi.id || li.type != BPF_LINK_TYPE_TRACING)
			die("link %s attaches program %u, not %s (%u)", p, li.prog_id, PROG_PINS[i], pi.id);
		close(link);
		if (i == 0)
			*prog_fd = prog;
		else
			close(prog);
	}
	for (int m = 0; m < NR_MAPS; m++)
		if (!all_used[m])
			die("no pinned program uses map %s", MAP_PINS[m]);
}

/* Denials per cgroup from the pinned denials_by_cgroup map, sorted by nothing (map order). */
static void read_cgroup_denials(int fd, struct state *s)
{
	uint64_t key, next, val, *prev = NULL;
	size_t cap = 0;

	s->ncgroups = 0;
	s->cgroup_overflow = 0;
	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		if (bpf_map_lookup_elem(fd, &next, &val) == 0) {
			if (next == 0) {
				s->cgroup_overflow = val;
			} else {
				if (s->ncgroups == cap) {
					cap = cap ? 2 * cap : 16;
					s->cgroups = realloc(s->cgroups, cap * sizeof(*s->cgroups));
					if (!s->cgroups)
						die("out of memory");
				}
				s->cgroups[s->ncgroups++] = (struct cgroup_count){ next, val };
			}
		}
		key = next;
		prev = &key;
	}
}

/* For the agent's statements (agentstate): the denials counted in one cgroup (v2 id, the
 * inode number of its directory in cgroupfs; see kw_cgroup_id_of_pid). Returns 0 with
 * *count set (0 when the cgroup was never refused), 1 when some denials could not be
 * attributed because denials_by_cgroup was full (the count may be low: judge it unknown),
 * -errno when the pinned map cannot be read. */
int kw_cgroup_denials(const char *pin_dir, uint64_t cgroup_id, uint64_t *count);
int kw_cgroup_denials(const char *pin_dir, uint64_t cgroup_id, uint64_t *count)
{
	LIBBPF_OPTS(bpf_obj_get_opts, ro, .file_flags = BPF_F_RDONLY);
	uint64_t overflow_key = 0, overflow = 0;
	char p[4096];
	int fd, rc = 0;

	*count = 0;
	if ((size_t)snprintf(p, sizeof(p), "%s/cgroup-denials", pin_dir) >= sizeof(p))
		return -ENAMETOOLONG;
	if ((fd = bpf_obj_get_opts(p, &ro)) < 0)
		return -errno;
	if (cgroup_id != 0 && bpf_map_lookup_elem(fd, &cgroup_id, count) && errno != ENOENT)
		rc = -errno;
	if (rc == 0 && bpf_map_lookup_elem(fd, &overflow_key, &overflow) == 0 && overflow > 0)
		rc = 1;
	close(fd);
	return rc;
}

/* The cgroup v2 id of a process: the inode number of its directory under the cgroup2 mount
 * (`0::/path` in /proc/PID/cgroup), which is what bpf_get_current_cgroup_id returns.
 * Returns 0 or -errno. */
int kw_cgroup_id_of_pid(pid_t pid, const char *cgroup2_mount, uint64_t *id);
int kw_cgroup_id_of_pid(pid_t pid, const char *cgroup2_mount, uint64_t *id)
{
	char p[4096], *line = NULL;
	size_t cap = 0;
	ssize_t len;
	struct stat st;
	FILE *f;
	int rc = -ENOENT;

	snprintf(p, sizeof(p), "/proc/%d/cgroup", (int)pid);
	if (!(f = fopen(p, "re")))
		return -errno;
	while ((len = getline(&line, &cap, f)) >= 0) {
		if (strncmp(line, "0::", 3) != 0)
			continue;
		while (len > 0 && line[len - 1] == '\n')
			line[--len] = 0;
		if ((size_t)snprintf(p, sizeof(p), "%s%s", cgroup2_mount, line + 3) >= sizeof(p))
			rc = -ENAMETOOLONG;
		else if (stat(p, &st))
			rc = -errno;
		else {
			*id = st.st_ino;
			rc = 0;
		}
		break;
	}
	free(line);
	fclose(f);
	return rc;
}

/* Reads the live state from the pinned programs and maps (what the kernel enforces now),
 * after check_pinned. */
static void read_live_state(const char *pin_dir, struct state *s)
{
	int prog, fds[NR_MAPS];
	uint32_t zero = 0;
	struct kw_config cfg;
	struct bpf_prog_info info;
	uint32_t info_len = sizeof(info);
	uint8_t key[DIGEST_LEN], next[DIGEST_LEN], (*d)[DIGEST_LEN];
	size_t n = 0;
	void *prev = NULL;

	memset(s, 0, sizeof(*s));
	check_pinned(pin_dir, fds, &prog);
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(prog, &info, &info_len))
		die("bpf_obj_get_info_by_fd: %s", strerror(errno));
	memcpy(s->tag, info.tag, 8);
	s->load_time = info.load_time; /* ns since boot (kernel: ktime_get_boottime_ns) */
	close(prog);

	if (bpf_map_lookup_elem(fds[1], &zero, &cfg))
		die("cannot read the config map: %s", strerror(errno));
	s->mode = (uint8_t)cfg.mode;
	if (bpf_map_lookup_elem(fds[2], &zero, &s->denials))
		die("cannot read the denial counter: %s", strerror(errno));
	read_cgroup_denials(fds[3], s);

	d = malloc((size_t)MAX_ENTRIES * DIGEST_LEN);
	if (!d)
		die("out of memory");
	while (n < MAX_ENTRIES && bpf_map_get_next_key(fds[0], prev, next) == 0) {
		memcpy(d[n++], next, DIGEST_LEN);
		memcpy(key, next, DIGEST_LEN);
		prev = key;
	}
	for (int i = 0; i < NR_MAPS; i++)
		close(fds[i]);
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
	struct bpf_program *progs[NR_PROGS];
	struct bpf_map *maps[NR_MAPS];
	struct bpf_link *links[NR_PROGS];
	struct kw_config cfg;
	struct state s;
	struct stat exe;
	uint8_t(*d)[DIGEST_LEN], one = 1;
	uint64_t overflow_key = 0, no_denials = 0;
	uint32_t zero = 0;
	char p[4096];
	size_t n;
	int fds[NR_MAPS];

	if (!o->allowlist)
		die("load needs --allowlist FILE");
	n = read_allowlist(o->allowlist, &d);
	mkdirs(o->pin_dir);
	if (mkdir(o->pin_dir, 0700) && errno != EEXIST)
		die("mkdir %s: %s", o->pin_dir, strerror(errno));
	pin_path(p, sizeof(p), o->pin_dir, "prog");
	if (access(p, F_OK) == 0)
		die("already loaded (%s exists); unload first", p);
	/* kw_bpf_map lets only this executable open the maps once loaded. */
	if (stat("/proc/self/exe", &exe))
		die("stat /proc/self/exe: %s", strerror(errno));

	if (!(skel = allowlist_bpf__open_and_load()))
		die("loading the BPF program failed: %s", strerror(errno));
	maps[0] = skel->maps.kw_allowed;
	maps[1] = skel->maps.kw_config;
	maps[2] = skel->maps.kw_denials;
	maps[3] = skel->maps.denials_by_cgroup;
	progs[0] = skel->progs.keyward_exec_allowlist;
	progs[1] = skel->progs.keyward_mmap_file;
	progs[2] = skel->progs.keyward_file_mprotect;
	progs[3] = skel->progs.keyward_bpf_map;
	memset(&cfg, 0, sizeof(cfg));
	cfg.mode = (uint32_t)o->mode;
	cfg.agent_ino = exe.st_ino;
	cfg.agent_dev = (uint64_t)major(exe.st_dev) << 20 | minor(exe.st_dev); /* kernel dev_t */
	for (int i = 0; i < NR_MAPS; i++) {
		fds[i] = bpf_map__fd(maps[i]);
		cfg.map_ids[i] = map_id(fds[i]);
	}
	for (size_t i = 0; i < n; i++)
		if (bpf_map_update_elem(fds[0], d[i], &one, BPF_NOEXIST))
			die("filling the allowlist map: %s", strerror(errno));
	if (bpf_map_update_elem(fds[1], &zero, &cfg, BPF_ANY))
		die("setting the mode: %s", strerror(errno));
	if (bpf_map_update_elem(fds[3], &overflow_key, &no_denials, BPF_NOEXIST))
		die("initialising the cgroup counters: %s", strerror(errno));
	/* Freeze against syscall writes: the allowlist, mode and counters can then change only by
	 * unloading and loading again, which is measured. The allowlist and config are also
	 * read-only to BPF programs (BPF_F_RDONLY_PROG); the counters, which the programs write,
	 * are kept from other programs by kw_bpf_map. */
	for (int i = 0; i < NR_MAPS; i++)
		if (bpf_map_freeze(fds[i]))
			die("bpf_map_freeze: %s", strerror(errno));

	for (int i = 0; i < NR_MAPS; i++) {
		pin_path(p, sizeof(p), o->pin_dir, MAP_PINS[i]);
		if (bpf_map__pin(maps[i], p))
			die("pinning %s: %s", p, strerror(errno));
	}
	for (int i = 0; i < NR_PROGS; i++) {
		pin_path(p, sizeof(p), o->pin_dir, PROG_PINS[i]);
		if (bpf_program__pin(progs[i], p))
			die("pinning %s: %s", p, strerror(errno));
	}
	/* The exec hooks first, the map guard last (it needs nothing from the others). */
	for (int i = 0; i < NR_PROGS; i++) {
		if (!(links[i] = bpf_program__attach_lsm(progs[i])))
			die("attaching %s: %s", PROG_PINS[i], strerror(errno));
		pin_path(p, sizeof(p), o->pin_dir, LINK_PINS[i]);
		if (bpf_link__pin(links[i], p))
			die("pinning %s: %s", p, strerror(errno));
	}

	read_live_state(o->pin_dir, &s);
	if (s.entries != n)
		die("map holds %zu entries, file has %zu", s.entries, n);
	measure(o, &s, 0);
	print_state(&s, 1);
	free(d);
	free(s.cgroups);
	for (int i = 0; i < NR_PROGS; i++) {
		bpf_link__disconnect(links[i]); /* the pin keeps it attached after we exit */
		bpf_link__destroy(links[i]);
	}
	allowlist_bpf__destroy(skel);
}

/* Measures first, removes after: the live state (denials counted up to now), then an
 * "unloaded" record (mode 0), so the log and PCR say the allowlist stopped before it does.
 * Removing the pins by other means (rm) is not measured; the next measurement then finds no
 * attached program and refuses (check_pinned). */
static void cmd_unload(const struct opts *o)
{
	char p[4096];
	struct state s;
	int missing = 0, total = 0;

	pin_path(p, sizeof(p), o->pin_dir, "prog");
	if (access(p, F_OK) == 0) {
		read_live_state(o->pin_dir, &s);
		measure(o, &s, 1);
		s.mode = MODE_UNLOADED;
		measure(o, &s, 0);
		free(s.cgroups);
	}
	for (int i = 0; i < NR_PROGS; i++, total += 2) {
		pin_path(p, sizeof(p), o->pin_dir, LINK_PINS[i]);
		missing += unlink(p) && errno == ENOENT;
		pin_path(p, sizeof(p), o->pin_dir, PROG_PINS[i]);
		missing += unlink(p) && errno == ENOENT;
	}
	for (int i = 0; i < NR_MAPS; i++, total++) {
		pin_path(p, sizeof(p), o->pin_dir, MAP_PINS[i]);
		missing += unlink(p) && errno == ENOENT;
	}
	rmdir(o->pin_dir);
	printf(missing == total ? "not loaded\n" : "unloaded\n");
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

// SPDX-License-Identifier: Apache-2.0
// keyward-allowlist: the exec-allowlist agent (docs/allowlist-state.md). `load` loads the LSM
// programs (allowlist.bpf.c: exec, executable mappings, the guard of its own maps, the guard of
// the agent's memory), fills and freezes its maps, generates a P-256 statement key in memory,
// extends two records into the allowlist PCR (sha256 bank) — LOAD (program tag, load time,
// mode, allowlist digest, the key's public point) and SEPARATOR ("workload phase begins") —
// and then stays in the foreground serving signed statements on a unix socket. Before each
// statement it checks that every program is still attached and uses exactly the maps it
// loaded; the statement carries the host-wide denial count and that of the requester's cgroup.
// It must be started from the measured boot chain before any workload (the lab: the initramfs
// /init): every record extended after the separator makes the state untrustworthy to the broker.
//
//   keyward-allowlist load --allowlist FILE [--mode enforce|audit] [--socket PATH] [common]
//   keyward-allowlist separator [--pcr N] [--tcti TCTI]   boot chain without an agent: close the phase
//   keyward-allowlist statement --nonce HEX64 --jkt HEX64 [--socket PATH]
//   keyward-allowlist status [--pin-dir DIR]
//   keyward-allowlist unload [--pin-dir DIR]     stops the agent and removes the pins
//   keyward-allowlist encode --allowlist FILE --mode M --tag HEX16 --load-time N --denials N
//                            --nonce HEX64 --jkt HEX64     (format cross-check, fresh key)
//   common: [--pcr N | --no-pcr] [--pin-dir DIR] [--tcti TCTI]
//
// Socket protocol: the client writes 64 bytes (challenge nonce || key thumbprint, raw) and
// reads one JSON line {"records": [hex, hex], "statement": hex} or {"error": "..."}.
//
// Allowlist file: sha256sum(1) format, one lowercase/uppercase 64-hex digest per line,
// optionally followed by whitespace and a path (informational); '#' lines and blank lines
// are ignored; any other line is an error (fail closed).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>

#include "allowlist.skel.h"

#define DIGEST_LEN 32
#define MAX_ENTRIES 65536 /* = KW_MAX_ENTRIES in allowlist.bpf.c */
#define MODE_ENFORCE 1
#define MODE_AUDIT 2
/* docs/allowlist-state.md "Records" and "Statement". */
#define RECORD_LABEL "keyward-allowlist-v2"            /* 20 bytes */
#define RECORD_LEN 136
#define KIND_LOAD 1
#define KIND_SEPARATOR 2
#define POINT_LEN 65                                    /* SEC1 uncompressed P-256 */
#define STATEMENT_LABEL "keyward-allowlist-statement-v2" /* 30 bytes */
#define STATEMENT_SIGNED 176
#define STATEMENT_LEN 240
#define CGROUP_DENIALS_UNKNOWN UINT64_MAX
/* Run by absolute path with a fixed environment: never found through root's PATH. */
#ifndef TPM2_PCREXTEND
#define TPM2_PCREXTEND "/usr/bin/tpm2_pcrextend"
#endif
#define DEFAULT_SOCKET "/run/keyward/agent.sock"
#define CGROUP2_MOUNT "/sys/fs/cgroup"
#define CGROUP2_MAGIC 0x63677270 /* CGROUP2_SUPER_MAGIC */
#define NR_MAPS 4                /* = KW_NR_MAPS in allowlist.bpf.c */
#define NR_PROGS 5

/* = struct kw_config in allowlist.bpf.c */
struct kw_config {
	uint32_t mode;
	uint32_t agent_tgid;
	uint64_t agent_ino;
	uint64_t agent_dev;
	uint32_t map_ids[NR_MAPS];
};

/* Pinned maps, in kw_config.map_ids order; programs and their links. */
static const char *const MAP_PINS[NR_MAPS] = { "allowed", "config", "denials", "cgroup-denials" };
static const char *const PROG_PINS[NR_PROGS] = { "prog", "prog-mmap", "prog-mprotect", "prog-bpf-map", "prog-protect" };
static const char *const LINK_PINS[NR_PROGS] = { "link", "link-mmap", "link-mprotect", "link-bpf-map", "link-protect" };

struct opts {
	const char *allowlist;
	const char *pin_dir;
	const char *socket;
	const char *tcti;
	const char *tag_hex;
	const char *nonce_hex;
	const char *jkt_hex;
	int pcr; /* -1: do not extend */
	int mode;
	int have_load_time, have_denials;
	uint64_t denials;
	uint64_t load_time;
};

/* What the kernel enforces now, read through the agent's own descriptors. */
struct state {
	uint8_t allowlist_digest[DIGEST_LEN];
	uint8_t mode;
	uint8_t tag[8];
	uint64_t denials;
	uint64_t load_time;
	uint32_t link_id, prog_id;
	size_t entries;
};

struct cgroup_count {
	uint64_t id;
	uint64_t denials;
};

/* Descriptors of the programs, their links and the maps (MAP_PINS order): the daemon holds
 * its own for its lifetime (unlinking pins does not detach a program whose link the agent
 * holds); `status` opens the pins. */
struct live {
	int progs[NR_PROGS], links[NR_PROGS], maps[NR_MAPS];
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


static void put_u32be(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/* docs/allowlist-state.md "Records": LOAD carries the program and the agent's public point. */
static void encode_load(const struct state *s, const uint8_t point[POINT_LEN], uint8_t rec[RECORD_LEN])
{
	memset(rec, 0, RECORD_LEN);
	memcpy(rec, RECORD_LABEL, 20);
	rec[21] = KIND_LOAD;
	memcpy(rec + 22, s->allowlist_digest, DIGEST_LEN);
	rec[54] = s->mode;
	memcpy(rec + 55, s->tag, 8);
	put_u64be(rec + 63, s->load_time);
	memcpy(rec + 71, point, POINT_LEN);
}

static void encode_separator(uint8_t rec[RECORD_LEN])
{
	memset(rec, 0, RECORD_LEN);
	memcpy(rec, RECORD_LABEL, 20);
	rec[21] = KIND_SEPARATOR;
}

/* Denials counted in one cgroup (v2 id, the inode number of its directory in cgroupfs; see
 * kw_cgroup_id_of_pid) from denials_by_cgroup. Returns 0 with *count set (0 when the cgroup
 * was never refused), 1 when some denials could not be attributed because the map was full
 * (the count may be low: judge it unknown), -errno when the map cannot be read. */
static int kw_cgroup_denials(int fd, uint64_t cgroup_id, uint64_t *count)
{
	uint64_t overflow_key = 0, overflow = 0;

	*count = 0;
	if (cgroup_id != 0 && bpf_map_lookup_elem(fd, &cgroup_id, count) && errno != ENOENT)
		return -errno;
	if (bpf_map_lookup_elem(fd, &overflow_key, &overflow) == 0 && overflow > 0)
		return 1;
	return 0;
}

/* The cgroup v2 id of a process: the inode number of its directory under the cgroup2 mount
 * (`0::/path` in /proc/PID/cgroup), which is what bpf_get_current_cgroup_id returns.
 * Returns 0 or -errno (-ENOTSUP when no cgroup2 is mounted there). */
static int kw_cgroup_id_of_pid(pid_t pid, const char *cgroup2_mount, uint64_t *id)
{
	char p[4096], *line = NULL;
	size_t cap = 0;
	ssize_t len;
	struct statfs fs;
	struct stat st;
	FILE *f;
	int rc = -ENOENT;

	if (statfs(cgroup2_mount, &fs) || fs.f_type != CGROUP2_MAGIC)
		return -ENOTSUP;
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

/* The statement's cgroup slot for the process at the other end of a unix socket: its cgroup id
 * (SO_PEERCRED pid) and that cgroup's denials, or CGROUP_DENIALS_UNKNOWN. */
static void peer_cgroup(int fd, const struct live *l, uint64_t *cgroup_id, uint64_t *denials)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	*cgroup_id = 0;
	*denials = CGROUP_DENIALS_UNKNOWN;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) || cred.pid <= 0 ||
	    kw_cgroup_id_of_pid(cred.pid, CGROUP2_MOUNT, cgroup_id) ||
	    kw_cgroup_denials(l->maps[3], *cgroup_id, denials))
		*denials = CGROUP_DENIALS_UNKNOWN;
}

/* docs/allowlist-state.md "Statement": body (176 bytes) then r||s over SHA-256 of the body. */
static int sign_statement(EVP_PKEY *key, const uint8_t nonce[32], const uint8_t jkt[32],
			  const struct state *s, uint64_t cgroup_id, uint64_t cg_denials,
			  uint8_t out[STATEMENT_LEN])
{
	unsigned char der[128];
	const unsigned char *p = der;
	size_t der_len = sizeof(der);
	EVP_MD_CTX *ctx;
	ECDSA_SIG *sig;
	const BIGNUM *r, *sv;
	int ok;

	memset(out, 0, STATEMENT_LEN);
	memcpy(out, STATEMENT_LABEL, 30);
	memcpy(out + 31, nonce, 32);
	memcpy(out + 63, jkt, 32);
	memcpy(out + 95, s->allowlist_digest, DIGEST_LEN);
	out[127] = s->mode;
	memcpy(out + 128, s->tag, 8);
	put_u64be(out + 136, s->load_time);
	put_u64be(out + 144, s->denials);
	put_u64be(out + 152, cgroup_id);
	put_u64be(out + 160, cg_denials);
	put_u32be(out + 168, s->link_id);
	put_u32be(out + 172, s->prog_id);
	if (!(ctx = EVP_MD_CTX_new()))
		return -1;
	ok = EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
	     EVP_DigestSign(ctx, der, &der_len, out, STATEMENT_SIGNED) == 1;
	EVP_MD_CTX_free(ctx);
	if (!ok || !(sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len)))
		return -1;
	ECDSA_SIG_get0(sig, &r, &sv);
	ok = BN_bn2binpad(r, out + STATEMENT_SIGNED, 32) == 32 && BN_bn2binpad(sv, out + STATEMENT_SIGNED + 32, 32) == 32;
	ECDSA_SIG_free(sig);
	return ok ? 0 : -1;
}

static EVP_PKEY *make_key(uint8_t point[POINT_LEN])
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	size_t n = 0;
	if (!key || !EVP_PKEY_set_utf8_string_param(key, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, "uncompressed") ||
	    !EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, point, POINT_LEN, &n) || n != POINT_LEN ||
	    point[0] != 0x04)
		die("generating the P-256 statement key failed");
	return key;
}

static void pin_path(char *buf, size_t n, const char *dir, const char *name)
{
	if ((size_t)snprintf(buf, n, "%s/%s", dir, name) >= n)
		die("pin path too long");
}

static uint32_t map_id(int fd)
{
	struct bpf_map_info info;
	uint32_t len = sizeof(info);

	memset(&info, 0, sizeof(info));
	return bpf_obj_get_info_by_fd(fd, &info, &len) ? 0 : info.id;
}

static int has_id(const uint32_t *ids, size_t n, uint32_t id)
{
	for (size_t i = 0; i < n; i++)
		if (ids[i] == id)
			return 1;
	return 0;
}

/* Before anything is read for a statement (or status): each program is still attached
 * through its link, and the maps every program uses are exactly the maps whose ids the agent
 * wrote into kw_config at load. Returns an error message (nothing is stated) or NULL. */
static const char *check_live(const struct live *l, char *err, size_t errlen)
{
	struct kw_config cfg;
	uint32_t zero = 0, held[NR_MAPS], used[16], all_used[NR_MAPS] = { 0 };

	for (int i = 0; i < NR_MAPS; i++)
		if (!(held[i] = map_id(l->maps[i])))
			return "cannot read the map info";
	if (bpf_map_lookup_elem(l->maps[1], &zero, &cfg))
		return "cannot read the config map";
	if (memcmp(cfg.map_ids, held, sizeof(held)) != 0) {
		snprintf(err, errlen, "pinned maps are not the ones loaded (ids %u %u %u %u, loaded %u %u %u %u)",
			 held[0], held[1], held[2], held[3], cfg.map_ids[0], cfg.map_ids[1], cfg.map_ids[2], cfg.map_ids[3]);
		return err;
	}
	for (int i = 0; i < NR_PROGS; i++) {
		struct bpf_prog_info pi;
		struct bpf_link_info li;
		uint32_t plen = sizeof(pi), llen = sizeof(li);

		memset(&pi, 0, sizeof(pi));
		pi.nr_map_ids = sizeof(used) / sizeof(used[0]);
		pi.map_ids = (uint64_t)(uintptr_t)used;
		if (bpf_obj_get_info_by_fd(l->progs[i], &pi, &plen) || pi.nr_map_ids > sizeof(used) / sizeof(used[0]))
			return "cannot read the program info";
		for (uint32_t k = 0; k < pi.nr_map_ids; k++) {
			if (!has_id(held, NR_MAPS, used[k])) {
				snprintf(err, errlen, "%s uses map id %u, which is not a loaded map", PROG_PINS[i], used[k]);
				return err;
			}
			for (int m = 0; m < NR_MAPS; m++)
				all_used[m] |= held[m] == used[k];
		}
		memset(&li, 0, sizeof(li));
		if (l->links[i] < 0 || bpf_obj_get_info_by_fd(l->links[i], &li, &llen)) {
			snprintf(err, errlen, "program %s is not attached (no link)", PROG_PINS[i]);
			return err;
		}
		if (li.prog_id != pi.id || li.type != BPF_LINK_TYPE_TRACING) {
			snprintf(err, errlen, "link %s attaches program %u, not %s (%u)", LINK_PINS[i], li.prog_id, PROG_PINS[i], pi.id);
			return err;
		}
	}
	for (int m = 0; m < NR_MAPS; m++)
		if (!all_used[m]) {
			snprintf(err, errlen, "no program uses map %s", MAP_PINS[m]);
			return err;
		}
	return NULL;
}

/* Reads the live state (what the kernel enforces now) after check_live; returns an error
 * message or NULL. */
static const char *read_live_state(const struct live *l, struct state *s, char *err, size_t errlen)
{
	uint32_t zero = 0;
	struct kw_config cfg;
	struct bpf_prog_info info;
	struct bpf_link_info link;
	uint32_t info_len = sizeof(info), link_len = sizeof(link);
	uint8_t key[DIGEST_LEN], next[DIGEST_LEN], (*d)[DIGEST_LEN];
	const char *bad;
	size_t n = 0;
	void *prev = NULL;

	memset(s, 0, sizeof(*s));
	if ((bad = check_live(l, err, errlen)))
		return bad;
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(l->progs[0], &info, &info_len))
		return "cannot read the program info";
	memcpy(s->tag, info.tag, 8);
	s->load_time = info.load_time; /* ns since boot (kernel: ktime_get_boottime_ns) */
	s->prog_id = info.id;
	memset(&link, 0, sizeof(link));
	if (bpf_obj_get_info_by_fd(l->links[0], &link, &link_len))
		return "cannot read the link info";
	s->link_id = link.id;
	if (bpf_map_lookup_elem(l->maps[1], &zero, &cfg))
		return "cannot read the mode";
	s->mode = (uint8_t)cfg.mode;
	if (bpf_map_lookup_elem(l->maps[2], &zero, &s->denials))
		return "cannot read the denial counter";
	d = malloc((size_t)MAX_ENTRIES * DIGEST_LEN);
	if (!d)
		return "out of memory";
	while (n < MAX_ENTRIES && bpf_map_get_next_key(l->maps[0], prev, next) == 0) {
		memcpy(d[n++], next, DIGEST_LEN);
		memcpy(key, next, DIGEST_LEN);
		prev = key;
	}
	s->entries = sort_unique(d, n);
	allowlist_digest(d, s->entries, s->allowlist_digest);
	free(d);
	return NULL;
}

/* Denials per cgroup id (status only), in map order; *overflow: those the kernel could not
 * attribute because the map was full (key 0). Returns the count; *out is malloc'd. */
static size_t read_cgroup_denials(int fd, struct cgroup_count **out, uint64_t *overflow)
{
	uint64_t key, next, val, *prev = NULL;
	size_t n = 0, cap = 0;

	*out = NULL;
	*overflow = 0;
	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		if (bpf_map_lookup_elem(fd, &next, &val) == 0) {
			if (next == 0) {
				*overflow = val;
			} else {
				if (n == cap) {
					cap = cap ? 2 * cap : 16;
					if (!(*out = realloc(*out, cap * sizeof(**out))))
						die("out of memory");
				}
				(*out)[n++] = (struct cgroup_count){ next, val };
			}
		}
		key = next;
		prev = &key;
	}
	return n;
}

static void extend_pcr(const struct opts *o, const uint8_t rec[RECORD_LEN])
{
	char spec[128], dh[2 * DIGEST_LEN + 1], tcti[512];
	char *env[] = { tcti, NULL };
	uint8_t dig[DIGEST_LEN];
	int status;
	pid_t pid;

	if (o->pcr < 0)
		return;
	sha256(rec, RECORD_LEN, dig);
	to_hex(dig, DIGEST_LEN, dh);
	snprintf(spec, sizeof(spec), "%d:sha256=%s", o->pcr, dh);
	if ((size_t)snprintf(tcti, sizeof(tcti), "TPM2TOOLS_TCTI=%s", o->tcti ? o->tcti : "device:/dev/tpmrm0") >= sizeof(tcti))
		die("--tcti too long");
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		execve(TPM2_PCREXTEND, (char *[]){ TPM2_PCREXTEND, spec, NULL }, env);
		fprintf(stderr, "keyward-allowlist: exec %s: %s\n", TPM2_PCREXTEND, strerror(errno));
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die("%s %s failed", TPM2_PCREXTEND, spec);
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

static int libbpf_quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return level == LIBBPF_DEBUG ? 0 : vfprintf(stderr, fmt, ap);
}

static void reply(int fd, const char *line)
{
	size_t n = strlen(line), off = 0;
	while (off < n) {
		ssize_t w = write(fd, line + off, n - off);
		if (w <= 0)
			return;
		off += (size_t)w;
	}
}

/* One request: 64 bytes in (nonce || jkt), one JSON line out. */
static void serve_one(int fd, EVP_PKEY *key, const struct live *l, const char records_hex[2][2 * RECORD_LEN + 1])
{
	uint8_t req[64], st[STATEMENT_LEN];
	char sh[2 * STATEMENT_LEN + 1], line[2 * (2 * RECORD_LEN + 1) + sizeof(sh) + 64];
	struct timeval tv = { .tv_sec = 5 };
	struct state s;
	const char *err;
	char ebuf[256];
	uint64_t cgroup_id, cg_denials;
	size_t got = 0;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	while (got < sizeof(req)) {
		ssize_t r = read(fd, req + got, sizeof(req) - got);
		if (r <= 0)
			return reply(fd, "{\"error\":\"expected 64 bytes: nonce || jkt\"}\n");
		got += (size_t)r;
	}
	if ((err = read_live_state(l, &s, ebuf, sizeof(ebuf)))) {
		snprintf(line, sizeof(line), "{\"error\":\"%s\"}\n", err);
		return reply(fd, line);
	}
	peer_cgroup(fd, l, &cgroup_id, &cg_denials);
	if (sign_statement(key, req, req + 32, &s, cgroup_id, cg_denials, st))
		return reply(fd, "{\"error\":\"signing failed\"}\n");
	to_hex(st, STATEMENT_LEN, sh);
	snprintf(line, sizeof(line), "{\"records\":[\"%s\",\"%s\"],\"statement\":\"%s\"}\n", records_hex[0], records_hex[1], sh);
	reply(fd, line);
}

static int listen_socket(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t old;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		die("--socket path too long");
	strcpy(sa.sun_path, path);
	mkdirs(path);
	/* Replace only a stale socket, never follow or remove anything else. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			die("%s exists and is not a socket", path);
		unlink(path);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		die("socket: %s", strerror(errno));
	old = umask(0117); /* srw-rw----: root and the socket's group */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 16))
		die("bind %s: %s", path, strerror(errno));
	umask(old);
	return fd;
}

static void cmd_load(const struct opts *o)
{
	struct allowlist_bpf *skel;
	struct bpf_program *progs[NR_PROGS];
	struct bpf_map *maps[NR_MAPS];
	struct bpf_link *links[NR_PROGS];
	struct kw_config cfg;
	struct state s;
	struct live l;
	struct stat exe;
	uint8_t(*d)[DIGEST_LEN], one = 1, point[POINT_LEN], load_rec[RECORD_LEN], sep_rec[RECORD_LEN];
	char p[4096], ebuf[256], records_hex[2][2 * RECORD_LEN + 1];
	uint64_t overflow_key = 0, no_denials = 0;
	uint32_t zero = 0;
	const char *err;
	EVP_PKEY *key;
	size_t n;
	int sfd;

	if (!o->allowlist)
		die("load needs --allowlist FILE");
	/* The statement key lives only in this process: keep it out of core dumps, swap and
	 * same-uid ptrace (root is kept out by the LSM program, docs/allowlist-state.md). */
	if (prctl(PR_SET_DUMPABLE, 0) || mlockall(MCL_CURRENT | MCL_FUTURE))
		die("cannot protect the agent's memory: %s", strerror(errno));
	n = read_allowlist(o->allowlist, &d);
	mkdirs(o->pin_dir);
	if (mkdir(o->pin_dir, 0700) && errno != EEXIST)
		die("mkdir %s: %s", o->pin_dir, strerror(errno));
	pin_path(p, sizeof(p), o->pin_dir, "prog");
	if (access(p, F_OK) == 0)
		die("already loaded (%s exists): one load per boot", p);
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
	progs[4] = skel->progs.keyward_protect_agent;
	memset(&cfg, 0, sizeof(cfg));
	cfg.mode = (uint32_t)o->mode;
	cfg.agent_tgid = (uint32_t)getpid();
	cfg.agent_ino = exe.st_ino;
	cfg.agent_dev = (uint64_t)major(exe.st_dev) << 20 | minor(exe.st_dev); /* kernel dev_t */
	for (int i = 0; i < NR_MAPS; i++) {
		l.maps[i] = bpf_map__fd(maps[i]);
		if (!(cfg.map_ids[i] = map_id(l.maps[i])))
			die("bpf_obj_get_info_by_fd (map): %s", strerror(errno));
	}
	for (size_t i = 0; i < n; i++)
		if (bpf_map_update_elem(l.maps[0], d[i], &one, BPF_NOEXIST))
			die("filling the allowlist map: %s", strerror(errno));
	if (bpf_map_update_elem(l.maps[1], &zero, &cfg, BPF_ANY))
		die("setting the mode: %s", strerror(errno));
	if (bpf_map_update_elem(l.maps[3], &overflow_key, &no_denials, BPF_NOEXIST))
		die("initialising the cgroup counters: %s", strerror(errno));
	/* Freeze against syscall writes: the allowlist, mode and counters can then change only by
	 * loading again, which is a second load record (untrusted). The allowlist and config are
	 * also read-only to BPF programs (BPF_F_RDONLY_PROG); the counters, which the programs
	 * write, are kept from other programs by kw_bpf_map. */
	for (int i = 0; i < NR_MAPS; i++)
		if (bpf_map_freeze(l.maps[i]))
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
	/* The exec hooks first, then the map guard, then the ptrace guard: all before the key
	 * exists, so nothing but the agent can read its memory from then on. */
	for (int i = 0; i < NR_PROGS; i++) {
		if (!(links[i] = bpf_program__attach_lsm(progs[i])))
			die("attaching %s: %s", PROG_PINS[i], strerror(errno));
		pin_path(p, sizeof(p), o->pin_dir, LINK_PINS[i]);
		if (bpf_link__pin(links[i], p))
			die("pinning %s: %s", p, strerror(errno));
		l.progs[i] = bpf_program__fd(progs[i]);
		l.links[i] = bpf_link__fd(links[i]);
	}
	if ((err = read_live_state(&l, &s, ebuf, sizeof(ebuf))))
		die("%s", err);
	if (s.entries != n)
		die("map holds %zu entries, file has %zu", s.entries, n);
	free(d);

	key = make_key(point);
	encode_load(&s, point, load_rec);
	encode_separator(sep_rec);
	/* The socket first (so the workload can connect as soon as it starts), then the records:
	 * LOAD, then SEPARATOR. Nothing extended after the separator is trusted. */
	sfd = listen_socket(o->socket);
	extend_pcr(o, load_rec);
	extend_pcr(o, sep_rec);
	to_hex(load_rec, RECORD_LEN, records_hex[0]);
	to_hex(sep_rec, RECORD_LEN, records_hex[1]);
	printf("{\"mode\":\"%s\",\"entries\":%zu,\"loadRecord\":\"%s\",\"separator\":\"%s\",\"socket\":\"%s\"}\n",
	       s.mode == MODE_ENFORCE ? "enforce" : "audit", s.entries, records_hex[0], records_hex[1], o->socket);
	fflush(stdout);

	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		int c = accept4(sfd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			die("accept: %s", strerror(errno));
		}
		serve_one(c, key, &l, (const char(*)[2 * RECORD_LEN + 1])records_hex);
		close(c);
	}
}

/* A boot chain that starts no agent still closes the pre-workload phase, so that a workload
 * cannot be the first to extend a LOAD record (docs/allowlist-state.md). */
static void cmd_separator(const struct opts *o)
{
	uint8_t rec[RECORD_LEN];
	char rh[2 * RECORD_LEN + 1];
	encode_separator(rec);
	extend_pcr(o, rec);
	to_hex(rec, RECORD_LEN, rh);
	printf("{\"separator\":\"%s\"}\n", rh);
}

static void cmd_statement(const struct opts *o)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint8_t req[64];
	char buf[4096];
	ssize_t r;
	int fd;

	if (!o->nonce_hex || !o->jkt_hex || from_hex(o->nonce_hex, strlen(o->nonce_hex), req, 32) ||
	    from_hex(o->jkt_hex, strlen(o->jkt_hex), req + 32, 32))
		die("statement needs --nonce HEX64 --jkt HEX64");
	if (strlen(o->socket) >= sizeof(sa.sun_path))
		die("--socket path too long");
	strcpy(sa.sun_path, o->socket);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
		die("connect %s: %s", o->socket, strerror(errno));
	if (write(fd, req, sizeof(req)) != (ssize_t)sizeof(req))
		die("write: %s", strerror(errno));
	shutdown(fd, SHUT_WR);
	while ((r = read(fd, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)r, stdout);
	close(fd);
}

/* Opens the pins (maps read-only: kw_bpf_map refuses anything else) into `l`. */
static void open_pins(const char *pin_dir, struct live *l)
{
	LIBBPF_OPTS(bpf_obj_get_opts, ro, .file_flags = BPF_F_RDONLY);
	char p[4096];

	for (int i = 0; i < NR_MAPS; i++) {
		pin_path(p, sizeof(p), pin_dir, MAP_PINS[i]);
		if ((l->maps[i] = bpf_obj_get_opts(p, &ro)) < 0)
			die("cannot open %s (not loaded?): %s", p, strerror(errno));
	}
	for (int i = 0; i < NR_PROGS; i++) {
		pin_path(p, sizeof(p), pin_dir, PROG_PINS[i]);
		if ((l->progs[i] = bpf_obj_get(p)) < 0)
			die("no allowlist program pinned at %s (not loaded?): %s", p, strerror(errno));
		pin_path(p, sizeof(p), pin_dir, LINK_PINS[i]);
		l->links[i] = bpf_obj_get(p);
	}
}

/* What the pins say the kernel enforces now: refuses (exit 1) when a link pin is gone or a map
 * pin was replaced, as the agent refuses a statement when its own descriptors fail the check. */
static void cmd_status(const struct opts *o)
{
	char ah[2 * DIGEST_LEN + 1], th[17], ebuf[256];
	struct cgroup_count *cg;
	uint64_t overflow;
	struct state s;
	struct live l;
	const char *err;
	size_t ncg;

	open_pins(o->pin_dir, &l);
	if ((err = read_live_state(&l, &s, ebuf, sizeof(ebuf))))
		die("%s", err);
	ncg = read_cgroup_denials(l.maps[3], &cg, &overflow);
	to_hex(s.allowlist_digest, DIGEST_LEN, ah);
	to_hex(s.tag, 8, th);
	printf("{\"mode\":\"%s\",\"entries\":%zu,\"allowlistDigest\":\"%s\",\"progTag\":\"%s\","
	       "\"denials\":%llu,\"loadTime\":%llu,\"progId\":%u,\"cgroupOverflow\":%llu,\"denialsByCgroup\":{",
	       s.mode == MODE_ENFORCE ? "enforce" : s.mode == MODE_AUDIT ? "audit" : "unknown", s.entries, ah, th,
	       (unsigned long long)s.denials, (unsigned long long)s.load_time, s.prog_id, (unsigned long long)overflow);
	/* cgroup ids as strings: they are u64 and JSON numbers are not */
	for (size_t i = 0; i < ncg; i++)
		printf("%s\"%llu\":%llu", i ? "," : "", (unsigned long long)cg[i].id, (unsigned long long)cg[i].denials);
	printf("}}\n");
	free(cg);
}

/* Stops the agent (its descriptors hold the programs attached), then removes the pins: the
 * programs detach and no statement is served any more. Nothing is extended: a record after
 * the separator would be untrusted anyway, and with no agent there is no state to admit. */
static void cmd_unload(const struct opts *o)
{
	LIBBPF_OPTS(bpf_obj_get_opts, ro, .file_flags = BPF_F_RDONLY);
	struct kw_config cfg;
	uint32_t zero = 0;
	char p[4096];
	int missing = 0, total = 0, fd;

	pin_path(p, sizeof(p), o->pin_dir, "config");
	if ((fd = bpf_obj_get_opts(p, &ro)) >= 0) {
		if (bpf_map_lookup_elem(fd, &zero, &cfg) == 0 && cfg.agent_tgid > 1 && (pid_t)cfg.agent_tgid != getpid())
			kill((pid_t)cfg.agent_tgid, SIGTERM);
		close(fd);
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

/* Prints what a load would extend and a statement, with a fresh key: the format cross-check. */
static void cmd_encode(const struct opts *o)
{
	struct state s;
	uint8_t(*d)[DIGEST_LEN], point[POINT_LEN], rec[RECORD_LEN], sep[RECORD_LEN], nonce[32], jkt[32], st[STATEMENT_LEN];
	char lh[2 * RECORD_LEN + 1], sh[2 * RECORD_LEN + 1], sth[2 * STATEMENT_LEN + 1];
	EVP_PKEY *key;

	memset(&s, 0, sizeof(s));
	if (!o->allowlist || !o->tag_hex || !o->mode || !o->have_load_time || !o->have_denials || !o->nonce_hex || !o->jkt_hex)
		die("encode needs --allowlist, --mode, --tag, --load-time, --denials, --nonce, --jkt");
	s.entries = read_allowlist(o->allowlist, &d);
	allowlist_digest(d, s.entries, s.allowlist_digest);
	free(d);
	if (from_hex(o->tag_hex, strlen(o->tag_hex), s.tag, 8))
		die("--tag must be 16 hex digits");
	if (from_hex(o->nonce_hex, strlen(o->nonce_hex), nonce, 32) || from_hex(o->jkt_hex, strlen(o->jkt_hex), jkt, 32))
		die("--nonce and --jkt must be 64 hex digits");
	s.mode = (uint8_t)o->mode;
	s.denials = o->denials;
	s.load_time = o->load_time;
	key = make_key(point);
	encode_load(&s, point, rec);
	encode_separator(sep);
	if (sign_statement(key, nonce, jkt, &s, 0, CGROUP_DENIALS_UNKNOWN, st))
		die("signing failed");
	to_hex(rec, RECORD_LEN, lh);
	to_hex(sep, RECORD_LEN, sh);
	to_hex(st, STATEMENT_LEN, sth);
	printf("{\"records\":[\"%s\",\"%s\"],\"statement\":\"%s\"}\n", lh, sh, sth);
	EVP_PKEY_free(key);
}

/* Strict decimal u64 within [0, max]: no sign, no blanks, no overflow. */
static uint64_t parse_u64(const char *v, const char *name, uint64_t max)
{
	char *end;
	unsigned long long x;
	if (!*v || *v < '0' || *v > '9')
		die("%s must be a decimal number", name);
	errno = 0;
	x = strtoull(v, &end, 10);
	if (errno || *end || x > max)
		die("%s must be a decimal number up to %llu", name, (unsigned long long)max);
	return x;
}

static void usage(void)
{
	fputs("usage: keyward-allowlist load|separator|statement|status|unload|encode [options]\n"
	      "  load --allowlist FILE [--mode enforce|audit] [--socket PATH]   (default enforce, " DEFAULT_SOCKET ")\n"
	      "  separator   (a boot chain without an agent closes the pre-workload phase)\n"
	      "  statement --nonce HEX64 --jkt HEX64 [--socket PATH]\n"
	      "  status   unload\n"
	      "  encode --allowlist FILE --mode M --tag HEX16 --load-time N --denials N --nonce HEX64 --jkt HEX64\n"
	      "  common: --pcr N (0..23, default 15) | --no-pcr, --pin-dir DIR (default /sys/fs/bpf/keyward),\n"
	      "          --tcti TCTI (default device:/dev/tpmrm0)\n",
	      stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	struct opts o = { .pin_dir = "/sys/fs/bpf/keyward", .socket = DEFAULT_SOCKET, .pcr = 15, .mode = 0 };
	const char *cmd;

	if (argc < 2)
		usage();
	cmd = argv[1];
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (strcmp(a, name) == 0 && (v || (die("%s needs a value", name), 0)) && ++i)
		if (ARG("--allowlist"))
			o.allowlist = v;
		else if (ARG("--pin-dir"))
			o.pin_dir = v;
		else if (ARG("--socket"))
			o.socket = v;
		else if (ARG("--tcti"))
			o.tcti = v;
		else if (ARG("--tag"))
			o.tag_hex = v;
		else if (ARG("--nonce"))
			o.nonce_hex = v;
		else if (ARG("--jkt"))
			o.jkt_hex = v;
		else if (ARG("--denials")) {
			o.denials = parse_u64(v, "--denials", UINT64_MAX);
			o.have_denials = 1;
		} else if (ARG("--load-time")) {
			o.load_time = parse_u64(v, "--load-time", UINT64_MAX);
			o.have_load_time = 1;
		} else if (ARG("--pcr"))
			o.pcr = (int)parse_u64(v, "--pcr", 23);
		else if (ARG("--mode")) {
			if (!strcmp(v, "enforce") || !strcmp(v, "1"))
				o.mode = MODE_ENFORCE;
			else if (!strcmp(v, "audit") || !strcmp(v, "2"))
				o.mode = MODE_AUDIT;
			else
				die("--mode must be enforce or audit");
		} else if (!strcmp(a, "--no-pcr"))
			o.pcr = -1;
		else
			usage();
#undef ARG
	}
	libbpf_set_print(libbpf_quiet);
	if (!strcmp(cmd, "load")) {
		if (!o.mode)
			o.mode = MODE_ENFORCE;
		cmd_load(&o);
	} else if (!strcmp(cmd, "statement"))
		cmd_statement(&o);
	else if (!strcmp(cmd, "separator"))
		cmd_separator(&o);
	else if (!strcmp(cmd, "status"))
		cmd_status(&o);
	else if (!strcmp(cmd, "unload"))
		cmd_unload(&o);
	else if (!strcmp(cmd, "encode"))
		cmd_encode(&o);
	else
		usage();
	return 0;
}

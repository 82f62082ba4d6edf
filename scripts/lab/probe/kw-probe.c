// Lab probes for the exec allowlist (scripts/lab/guest/scenarios/exec-allowlist.sh): ways to run
// code without an exec, and a root BPF program writing the allowlist's counter. Each prints
// "name result" lines; result is "ok" or the errno name/message of the refusal.
//   kw-probe hello                  a dynamically linked program to LD_PRELOAD into
//   kw-probe dlopen PATH            dlopen(PATH)
//   kw-probe mmap                   memfd + PROT_EXEC, memfd reopened read-only, mprotect
//                                   adding PROT_EXEC to a file mapping, anonymous PROT_EXEC
//   kw-probe bpf-attack PIN         socket filter via test_run zeroing key 0 of an array map:
//                                   first on a frozen map of its own (control), then on the
//                                   pinned map PIN and on every map it can open by id
//   kw-probe pin-fake PIN           pins a new array map (u32 -> u64, one zero entry) at PIN
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <linux/bpf.h>

static const char *res(int ok)
{
	return ok ? "ok" : strerrorname_np(errno) ? strerrorname_np(errno) : "error";
}

static int mmap_exec(int fd)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED)
		return 0;
	munmap(p, 4096);
	return 1;
}

static void probe_mmap(void)
{
	static const unsigned char code[4096] = { 0xc3 }; /* ret */
	char path[64];
	int fd, ro, ok;
	void *p;

	fd = memfd_create("kw-probe", MFD_CLOEXEC);
	if (fd < 0 || write(fd, code, sizeof(code)) != (ssize_t)sizeof(code)) {
		printf("memfd-setup %s\n", res(0));
		exit(2);
	}
	ok = mmap_exec(fd);
	printf("memfd-exec %s\n", res(ok));
	/* Without a writer: the same memfd reopened read-only, its writable descriptor closed. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ro = open(path, O_RDONLY | O_CLOEXEC);
	close(fd);
	ok = ro >= 0 && mmap_exec(ro);
	printf("memfd-readonly-exec %s\n", res(ok));
	close(ro);
	/* A listed file mapped without execute, then made executable. */
	fd = open("/bin/busybox", O_RDONLY | O_CLOEXEC);
	p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
	ok = p != MAP_FAILED && mprotect(p, 4096, PROT_READ | PROT_EXEC) == 0;
	printf("mprotect-file-exec %s\n", res(ok));
	close(fd);
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	printf("anon-exec %s\n", res(p != MAP_FAILED));
}

/* r1 = map; key 0 on the stack; r0 = lookup; if r0: *(u64 *)r0 = 0; return 0 */
static int zero_key0(int map_fd)
{
	struct bpf_insn insns[] = {
		{ .code = BPF_ST | BPF_MEM | BPF_W, .dst_reg = BPF_REG_10, .off = -4, .imm = 0 },
		{ .code = BPF_ALU64 | BPF_MOV | BPF_X, .dst_reg = BPF_REG_2, .src_reg = BPF_REG_10 },
		{ .code = BPF_ALU64 | BPF_ADD | BPF_K, .dst_reg = BPF_REG_2, .imm = -4 },
		{ .code = BPF_LD | BPF_DW | BPF_IMM, .dst_reg = BPF_REG_1, .src_reg = BPF_PSEUDO_MAP_FD, .imm = map_fd },
		{ .code = 0 },
		{ .code = BPF_JMP | BPF_CALL, .imm = BPF_FUNC_map_lookup_elem },
		{ .code = BPF_JMP | BPF_JEQ | BPF_K, .dst_reg = BPF_REG_0, .off = 1, .imm = 0 },
		{ .code = BPF_ST | BPF_MEM | BPF_DW, .dst_reg = BPF_REG_0, .off = 0, .imm = 0 },
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	unsigned char pkt[64] = { 0 };
	LIBBPF_OPTS(bpf_test_run_opts, run, .data_in = pkt, .data_size_in = sizeof(pkt));
	int prog = bpf_prog_load(BPF_PROG_TYPE_SOCKET_FILTER, "kw_probe", "GPL", insns,
				 sizeof(insns) / sizeof(insns[0]), NULL);
	int ok;

	if (prog < 0)
		return 0;
	ok = bpf_prog_test_run_opts(prog, &run) == 0;
	close(prog);
	return ok;
}

static int is_counter(int fd)
{
	struct bpf_map_info info;
	uint32_t len = sizeof(info);

	memset(&info, 0, sizeof(info));
	return bpf_obj_get_info_by_fd(fd, &info, &len) == 0 && info.type == BPF_MAP_TYPE_ARRAY &&
	       info.max_entries == 1 && info.value_size == 8;
}

static void probe_bpf(const char *pin)
{
	uint32_t zero = 0, id = 0, control_id;
	uint64_t v = 7;
	struct bpf_map_info ci;
	uint32_t ci_len = sizeof(ci);
	int fd, ok, refused = 0, attacked = 0;
	LIBBPF_OPTS(bpf_obj_get_opts, ro, .file_flags = BPF_F_RDONLY);

	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "kw_control", 4, 8, 1, NULL);
	if (fd < 0 || bpf_map_update_elem(fd, &zero, &v, BPF_ANY) || bpf_map_freeze(fd)) {
		printf("control-frozen-map %s setup\n", res(0));
		exit(2);
	}
	ok = zero_key0(fd) && bpf_map_lookup_elem(fd, &zero, &v) == 0;
	printf("control-frozen-map %s 7->%llu\n", res(ok), (unsigned long long)v);
	/* Freed only after an RCU grace period: it may still be found by id below. */
	memset(&ci, 0, sizeof(ci));
	control_id = bpf_obj_get_info_by_fd(fd, &ci, &ci_len) == 0 ? ci.id : 0;
	close(fd);

	fd = bpf_obj_get(pin);
	printf("pin-rw %s\n", res(fd >= 0));
	if (fd < 0)
		fd = bpf_obj_get_opts(pin, &ro);
	else
		printf("pin-ro skipped\n");
	if (fd >= 0) {
		printf("pin-attack %s\n", res(zero_key0(fd)));
		close(fd);
	} else {
		printf("pin-ro %s\n", res(0));
	}
	while (bpf_map_get_next_id(id, &id) == 0) {
		if (id == control_id)
			continue;
		fd = bpf_map_get_fd_by_id(id);
		if (fd < 0) {
			refused += errno == EPERM;
			continue;
		}
		if (is_counter(fd) && zero_key0(fd))
			attacked++;
		close(fd);
	}
	printf("by-id-refused %d\nby-id-attacked %d\n", refused, attacked);
}

int main(int argc, char **argv)
{
	void *h;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 2 && !strcmp(argv[1], "hello")) {
		printf("hello\n");
	} else if (argc == 3 && !strcmp(argv[1], "dlopen")) {
		h = dlopen(argv[2], RTLD_NOW);
		printf("dlopen %s\n", h ? "ok" : dlerror());
	} else if (argc == 2 && !strcmp(argv[1], "mmap")) {
		probe_mmap();
	} else if (argc == 3 && !strcmp(argv[1], "bpf-attack")) {
		probe_bpf(argv[2]);
	} else if (argc == 3 && !strcmp(argv[1], "pin-fake")) {
		int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "kw_fake", 4, 8, 1, NULL);
		printf("pin-fake %s\n", res(fd >= 0 && bpf_obj_pin(fd, argv[2]) == 0));
	} else {
		fputs("usage: kw-probe hello|dlopen PATH|mmap|bpf-attack PIN|pin-fake PIN\n", stderr);
		return 2;
	}
	return 0;
}

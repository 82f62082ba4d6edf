// Lab payload for the exec-allowlist bypass probes (LD_PRELOAD, dlopen, process.dlopen): a
// shared library that is never on the allowlist. Its constructor proves the code ran by
// creating the file named in $KW_MARK.
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((constructor)) static void kw_mark(void)
{
	const char *m = getenv("KW_MARK");
	int fd;

	if (m && (fd = open(m, O_WRONLY | O_CREAT | O_TRUNC, 0644)) >= 0) {
		(void)!write(fd, "ran\n", 4);
		close(fd);
	}
}

#include "autoconf.h"

#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include <errno.h>
#include <grp.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "sandbox.h"

void
sandbox_drop(const char *chroot_dir, const char *user, uid_t uid, gid_t gid)
{
	if (chroot_dir != NULL) {
		if (chroot(chroot_dir) == -1)
			fatal("chroot %s", chroot_dir);
		if (chdir("/") == -1)
			fatal("chdir /");
	}
	if (setgroups(1, &gid) == -1 ||
	    setresgid(gid, gid, gid) == -1 ||
	    setresuid(uid, uid, uid) == -1)
		fatal("cannot drop privileges to %s", user);
	/* Paranoia: getting root back must be impossible now. */
	if (uid != 0 && setuid(0) != -1)
		fatalx("privileges were not dropped");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		fatal("prctl(PR_SET_NO_NEW_PRIVS)");
}

/* What every worker needs: its event loop, memory, imsg, time, logging. */
static const int base_calls[] = {
	SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev),
	SCMP_SYS(close), SCMP_SYS(recvmsg), SCMP_SYS(sendmsg),
	SCMP_SYS(sendto), SCMP_SYS(recvfrom),
	SCMP_SYS(epoll_wait), SCMP_SYS(epoll_pwait), SCMP_SYS(epoll_ctl),
	SCMP_SYS(poll), SCMP_SYS(ppoll),
	SCMP_SYS(clock_gettime), SCMP_SYS(gettimeofday), SCMP_SYS(time),
	SCMP_SYS(nanosleep), SCMP_SYS(clock_nanosleep),
	SCMP_SYS(getpid), SCMP_SYS(gettid), SCMP_SYS(getppid),
	SCMP_SYS(getuid), SCMP_SYS(geteuid), SCMP_SYS(getgid), SCMP_SYS(getegid),
	SCMP_SYS(exit), SCMP_SYS(exit_group), SCMP_SYS(restart_syscall),
	SCMP_SYS(brk), SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mremap),
	SCMP_SYS(madvise), SCMP_SYS(mprotect),
	SCMP_SYS(fcntl), SCMP_SYS(fstat), SCMP_SYS(newfstatat), SCMP_SYS(statx),
	SCMP_SYS(lseek), SCMP_SYS(dup), SCMP_SYS(dup3),
	SCMP_SYS(rt_sigaction), SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigreturn),
	SCMP_SYS(getrandom), SCMP_SYS(futex), SCMP_SYS(uname),
	SCMP_SYS(getrlimit), SCMP_SYS(prlimit64), SCMP_SYS(tgkill),
	SCMP_SYS(kill),
};

static const int smtp_calls[] = {
	SCMP_SYS(accept), SCMP_SYS(accept4), SCMP_SYS(getsockname),
	SCMP_SYS(getpeername), SCMP_SYS(setsockopt), SCMP_SYS(getsockopt),
	SCMP_SYS(shutdown), SCMP_SYS(ftruncate),
};

static const int queue_calls[] = {
	SCMP_SYS(openat), SCMP_SYS(open), SCMP_SYS(unlink), SCMP_SYS(unlinkat),
	SCMP_SYS(rename), SCMP_SYS(renameat), SCMP_SYS(renameat2),
	SCMP_SYS(fsync), SCMP_SYS(fdatasync), SCMP_SYS(syncfs),
	SCMP_SYS(getdents64), SCMP_SYS(mkdir), SCMP_SYS(mkdirat),
	SCMP_SYS(ftruncate), SCMP_SYS(pread64), SCMP_SYS(pwrite64),
	SCMP_SYS(lstat), SCMP_SYS(stat), SCMP_SYS(access), SCMP_SYS(faccessat),
	SCMP_SYS(faccessat2), SCMP_SYS(fchmod), SCMP_SYS(umask),
	SCMP_SYS(statfs), SCMP_SYS(fstatfs),
};

/*
 * The remote SMTP client and its resolver (libunbound, in the event loop):
 * TCP and UDP sockets, bound to a source address or a random port, socket
 * options, and SO_ERROR after a non-blocking connect.  socket() itself is
 * limited to IPv4 and IPv6 below.  The MongoDB store (libmongoc) needs the
 * same, plus threads: its client pool monitors the servers from threads
 * of its own, started after the filter is in place so that they inherit
 * it (clone is allowed for threads only, below).
 */
static const int deliver_calls[] = {
	SCMP_SYS(pread64), SCMP_SYS(connect), SCMP_SYS(bind),
	SCMP_SYS(getsockopt), SCMP_SYS(setsockopt), SCMP_SYS(shutdown),
	SCMP_SYS(set_robust_list), SCMP_SYS(rseq), SCMP_SYS(sched_yield),
	SCMP_SYS(sched_getaffinity),
};

/*
 * Remote tables and the quota check in MongoDB (policy/store_policy.c):
 * one client, no threads, TCP to the database.
 */
static const int policy_calls[] = {
	SCMP_SYS(connect), SCMP_SYS(getsockopt), SCMP_SYS(setsockopt),
	SCMP_SYS(shutdown),
};

static void
allow_list(scmp_filter_ctx ctx, const int *calls, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, calls[i], 0) < 0)
			fatalx("seccomp_rule_add %d failed", calls[i]);
}

#define NITEMS(a)	(sizeof(a) / sizeof((a)[0]))

/*
 * Threads but not processes: clone only with CLONE_THREAD.  clone3 passes
 * its flags in memory, out of the filter's sight, so it fails with ENOSYS
 * and glibc's pthread_create falls back to clone.
 */
static void
allow_threads(scmp_filter_ctx ctx)
{
	if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
	    SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD)) < 0 ||
	    seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3),
	    0) < 0)
		fatalx("seccomp_rule_add clone failed");
}

/*
 * A forbidden call traps here first so that the log names it; then the
 * process dies of SIGSYS as it would have, and the master restarts it.
 */
static void
sigsys_handler(int sig, siginfo_t *si, void *ctx)
{
	char	 buf[96];
	int	 n;

	n = snprintf(buf, sizeof(buf), "seccomp: forbidden system call %d "
	    "(see ausyscall %d)", si->si_syscall, si->si_syscall);
	if (n > 0)
		log_warnx("%s", buf);
	signal(SIGSYS, SIG_DFL);
	raise(SIGSYS);
	_exit(1);
}

void
sandbox_seccomp(enum proc_kind kind)
{
	struct sigaction sa;
	scmp_filter_ctx	 ctx;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = sigsys_handler;
	sa.sa_flags = SA_SIGINFO;
	if (sigaction(SIGSYS, &sa, NULL) == -1)
		fatal("sigaction SIGSYS");
	if ((ctx = seccomp_init(SCMP_ACT_TRAP)) == NULL)
		fatalx("seccomp_init failed");
	allow_list(ctx, base_calls, NITEMS(base_calls));
	switch (kind) {
	case PROC_SMTP:
		allow_list(ctx, smtp_calls, NITEMS(smtp_calls));
		break;
	case PROC_QUEUE:
		allow_list(ctx, queue_calls, NITEMS(queue_calls));
		break;
	case PROC_DELIVER:
		allow_list(ctx, deliver_calls, NITEMS(deliver_calls));
		allow_threads(ctx);
		break;
	case PROC_POLICY:
		allow_list(ctx, policy_calls, NITEMS(policy_calls));
		break;
	default:
		break;
	}
	/* libevent sizes its reads with FIONREAD; no other ioctl. */
	if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
	    SCMP_A1(SCMP_CMP_EQ, FIONREAD)) < 0)
		fatalx("seccomp_rule_add ioctl failed");
	/*
	 * Opening files fails softly where libraries may try: the chroot is
	 * empty anyway, and name resolution (/etc/hosts, gai.conf) or a
	 * charset converter not loaded in advance (store_mime.c) must see an
	 * error, not kill the process.
	 */
	if ((kind == PROC_DELIVER || kind == PROC_POLICY) &&
	    (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(openat),
	    0) < 0 ||
	    seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(open),
	    0) < 0))
		fatalx("seccomp_rule_add open failed");
	/*
	 * libmongoc initialises itself when mtad is loaded and, at exit,
	 * removes its statistics segment /dev/shm/mongoc-PID, named by the
	 * exiting process's pid: for a child that name never existed, and
	 * in the chroot it cannot be reached anyway.
	 */
	if ((kind == PROC_DELIVER || kind == PROC_POLICY ||
	    kind == PROC_SMTP) &&
	    seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOENT), SCMP_SYS(unlink),
	    0) < 0)
		fatalx("seccomp_rule_add unlink failed");
	/*
	 * syslog(3) reconnects after syslogd restarts; in a chroot that cannot
	 * work, but it must fail softly rather than kill the worker.  So must
	 * getaddrinfo's look at the interfaces (netlink) for AI_ADDRCONFIG.
	 */
	if (kind == PROC_DELIVER || kind == PROC_POLICY) {
		if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
		    SCMP_A0(SCMP_CMP_EQ, AF_INET)) < 0 ||
		    seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
		    SCMP_A0(SCMP_CMP_EQ, AF_INET6)) < 0 ||
		    seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES),
		    SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, AF_UNIX)) < 0 ||
		    seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES),
		    SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, AF_NETLINK)) < 0)
			fatalx("seccomp_rule_add socket failed");
	} else if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(socket), 0) < 0 ||
	    seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(connect), 0) < 0)
		fatalx("seccomp_rule_add failed");
	if (seccomp_load(ctx) < 0)
		fatalx("seccomp_load failed");
	seccomp_release(ctx);
}

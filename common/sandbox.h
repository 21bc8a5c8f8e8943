/*
 * Confinement of the worker processes: chroot, drop to an unprivileged user,
 * no new privileges, then a seccomp allow-list per process kind.  A syscall
 * off the list kills the process (SIGSYS); the master logs it and restarts it.
 */
#ifndef MTAD_SANDBOX_H
#define MTAD_SANDBOX_H

#include <sys/types.h>

#include "proto.h"

/* Fatal on any failure: a half-confined worker must not run. */
void	sandbox_drop(const char *chroot_dir, const char *user, uid_t, gid_t);
void	sandbox_seccomp(enum proc_kind);

#endif

/*
 * The offline drop file: a message that sendmail(8) could not hand to mtad
 * (not running) and left in QUEUE/offline/ for the master to submit later
 * (master/offline.c).  A versioned text envelope, then the message:
 *
 *	mtad-offline 1
 *	sender <ADDRESS>		"<>" for the null sender
 *	rcpt <ADDRESS>			one line per recipient, at least one
 *	notify NEVER|SUCCESS,...	DSN NOTIFY (optional)
 *	ret FULL|HDRS			DSN RET (optional)
 *	envid XTEXT			DSN ENVID, xtext-encoded (optional)
 *	size N				bytes of the message below
 *	(an empty line)
 *	the message, header-processed, LF line ends
 *
 * The writer creates ".NAME", writes, fsyncs, then renames it to NAME, so a
 * name without a leading dot is always complete.  The reader is strict: any
 * line it does not expect, a bad address, a wrong size, and the file is
 * refused.
 */
#ifndef MTAD_DROPFILE_H
#define MTAD_DROPFILE_H

#include <sys/types.h>
#include <stddef.h>
#include <stdint.h>

#include "submit.h"

#define DROPFILE_MAGIC		"mtad-offline 1"
#define DROPFILE_LINE_MAX	1024

/*
 * Writes the envelope and the size bytes of msgfd (from offset 0) into a
 * new file of dir, mode 0600, as the calling user.  Returns 0 and the
 * file's name, or -1 with errno and err.
 */
int	dropfile_write(const char *dir, const struct submit_env *, int msgfd,
	    uint64_t size, char *name, size_t namesz, char *err, size_t errsz);

/*
 * Parses the envelope of the drop file open on fd into env (which must be
 * empty); *off and *size locate the message.  Returns 0, or -1 with the
 * reason in err.
 */
int	dropfile_parse(int fd, struct submit_env *env, size_t max_rcpts,
	    uint64_t max_size, off_t *off, uint64_t *size, char *err,
	    size_t errsz);

#endif

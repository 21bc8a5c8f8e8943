/*
 * `mtactl show mailbox ADDRESS [limit N]`: a mailbox of the MongoDB store,
 * read from the database named by the configuration's `store mongo`.
 */
#ifndef MTAD_MTACTL_MAILBOX_H
#define MTAD_MTACTL_MAILBOX_H

#define MAILBOX_LIMIT_DEFAULT	20
#define MAILBOX_LIMIT_MAX	1000

/* Prints the mailbox (JSON when json); returns the exit status. */
int	mailbox_show(const char *conffile, const char *address, int limit,
	    int json);

/* mtactl.c: a JSON string literal of s on stdout. */
void	json_string(const char *);

#endif

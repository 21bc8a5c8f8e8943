/*
 * SMTP AUTH password checks in the policy process: a user and password
 * against a credentials table whose values are crypt(3) hashes.
 */
#ifndef MTAD_POLICY_AUTH_H
#define MTAD_POLICY_AUTH_H

struct table;

enum auth_result { AUTH_OK = 0, AUTH_FAIL, AUTH_TEMPFAIL };

/*
 * Looks `user` up in `creds` and checks `pass` against its hash: yescrypt
 * "$y$", sha512-crypt "$6$", sha256-crypt "$5$", bcrypt "$2b$"/"$2y$";
 * any other value ("*", "!", a list entry) never matches.  An unknown user
 * costs a hash computation too, so that timing does not tell users apart.
 * AUTH_TEMPFAIL when the table lookup fails (table_errors moved) or the
 * hash computation does (memory).
 */
enum auth_result auth_verify(struct table *creds, const char *user,
		    const char *pass);

#endif

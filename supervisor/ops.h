/* ops: the control operations of SPEC 6, in one place. ctl hands each
 * request here; every request gets exactly one reply. */
#ifndef ARBOR_OPS_H
#define ARBOR_OPS_H
#include <jansson.h>
#include <stdbool.h>

#include "registry/registry.h"
#include "supervisor/cond.h"
#include "supervisor/ctl.h"

/* What the ops work on; owned by main. */
struct ops_env {
	struct root	*root;
	struct registry	*reg;
	bool		 draining;	/* shutting down: no new work */
	void		(*shutdown)(void *arg);	/* the shutdown op */
	/* The reload op: the changed keys (new reference), or NULL with the
	 * reason in err. */
	json_t		*(*reload)(void *arg, char *err, size_t errlen);
	void		*arg;
};

/* The ctl_handler: arg is a struct ops_env. */
void	ops_handle(struct ctl_conn *, const char *payload, size_t len,
	    void *arg);

#endif

/* tree: the supervisor states a NODE may show are the four SPEC 4 names,
 * whatever the supervisor is doing inside (stopping its children counts
 * as running until they are down). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "supervisor/tree.h"

static void
test_state_names_are_spec_names(void **state)
{
	static const char *const spec[] = { "running", "restarting",
	    "stopped", "failed" };
	static const enum sup_state all[] = { SS_RUNNING, SS_RESTARTING,
	    SS_STOPPED, SS_FAILED, SS_STOPPING };
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
		const char *name = sup_state_name(all[i]);
		bool found = false;
		for (size_t k = 0; k < sizeof spec / sizeof spec[0]; k++)
			found |= strcmp(name, spec[k]) == 0;
		if (!found)
			fail_msg("state %d is shown as \"%s\"", (int)all[i],
			    name);
	}
	assert_string_equal(sup_state_name(SS_STOPPING), "running");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_state_names_are_spec_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

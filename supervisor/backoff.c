#include "supervisor/backoff.h"

int
backoff_next(struct backoff *b, double uptime_s, int base_ms, int max_ms)
{
	if (uptime_s >= BACKOFF_HEALTHY_S || base_ms <= 0) {
		b->quick_deaths = 0;
		return 0;
	}
	long delay = base_ms;
	for (int i = 0; i < b->quick_deaths && delay < max_ms; i++)
		delay *= 2;
	b->quick_deaths++;
	return delay > max_ms ? max_ms : (int)delay;
}

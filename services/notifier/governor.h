/* governor — whether a notification may go now: quiet hours for non-urgent SMS (Riyadh time)
 * and per-recipient and per-ticket rate limits kept in Redis. */
#ifndef WASL_NOTIFIER_GOVERNOR_H
#define WASL_NOTIFIER_GOVERNOR_H

#include "wasl_redis.h"

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* Saudi Arabia keeps UTC+3 all year (no daylight saving), so Asia/Riyadh is a fixed offset;
 * using it avoids touching the process-wide TZ that localtime_r() reads. */
#define GOVERNOR_RIYADH_OFFSET_S (3 * 3600)

/* Quiet hours [start_h, end_h) in Riyadh local time; start == end means none. The window may
 * wrap midnight (22 → 7). Returns 0 when `now` is outside the window, else the seconds until
 * it ends. */
long governor_quiet_wait_s(time_t now, int start_h, int end_h);

typedef struct {
    long recipient_max; /* per recipient and channel, per recipient_window_s; 0: off */
    long recipient_window_s;
    long ticket_max; /* per ticket, per ticket_window_s; 0: off */
    long ticket_window_s;
} governor_limits_t;

typedef struct governor governor_t;

/* `redis` is borrowed (NULL: no rate limits); `limits` is copied. The PII key must be set
 * (wasl_pii: recipients are named by their keyed hash). NULL on allocation failure. */
governor_t *governor_new(wasl_redis_t *redis, const governor_limits_t *limits);
void governor_destroy(governor_t **self_p);

/* Takes one send from the recipient's and the ticket's budgets (ticket_id 0: none). Returns 0
 * when allowed; otherwise the seconds to wait (> 0) before trying again, with nothing taken.
 * When Redis cannot be reached the send is allowed (rate limits are a courtesy that must not
 * stop acknowledgements) and *redis_down is set. */
long governor_take(governor_t *self, const char *channel, const char *recipient, int64_t ticket_id,
                   bool *redis_down);

#endif

/* wasl_agents — shared statements on the agent roster. */
#include "wasl_agents.h"

const char *const wasl_agent_remove_sql =
    "WITH up AS ("
    "  UPDATE agents SET enabled = false, presence = 'offline', presence_until = NULL,"
    "    updated_at = now() WHERE id = $1 AND enabled RETURNING id"
    "), ev AS ("
    "  INSERT INTO agent_events (agent_id, kind, actor, data)"
    "  SELECT id, 'agent.removed', $2, '{}' FROM up"
    "), wd AS ("
    "  UPDATE offers o SET state = 'withdrawn', answered_at = now(), reason = 'agent removed'"
    "  FROM up WHERE o.agent_id = up.id AND o.state = 'offered' RETURNING o.id, o.ticket_id"
    "), tev AS ("
    "  INSERT INTO ticket_events (ticket_id, kind, actor, data)"
    "  SELECT ticket_id, 'offer.withdrawn', $2, jsonb_build_object('offer', id,"
    "    'reason', 'agent removed') FROM wd"
    ")"
    "SELECT id FROM up";

-- The inbox's columns as stg_dr_events names them; which version counts is the view's rule
-- (ops.dr_events_current), not written again here.
select inbox.*
from {{ ref('stg_dr_events') }} as inbox
inner join {{ source('ops', 'dr_events_current') }} as current_version
    on inbox.inbox_id = current_version.inbox_id

-- One row per account: size, usage, device uptime and support load, combined into a 0-100 health score:
-- 40 points of device uptime, 30 of app use (50 sessions per user fill them) and 30 for few tickets
-- (one ticket per device empties them). An account without devices counts as fully up.
with accounts as (
    select * from {{ ref('stg_app__accounts') }}
),

activity as (
    select * from {{ ref('int_accounts__activity') }}
)

select
    a.account_id,
    a.account_name,
    a.industry,
    a.tier,
    a.status,
    a.billing_state,
    a.billing_city,
    a.mrr_usd,
    act.users,
    act.devices,
    act.online_devices,
    round(cast(act.avg_uptime_pct as numeric), 2) as avg_uptime_pct,
    act.tickets,
    act.high_priority_tickets,
    act.app_sessions,
    round(cast(
        40 * coalesce(act.avg_uptime_pct, 100) / 100
        + 30 * least(1.0, {{ safe_divide('act.app_sessions', '50.0 * greatest(act.users, 1)') }})
        + 30 * (1 - least(1.0, {{ safe_divide('act.tickets', 'greatest(act.devices, 1)') }}))
        as numeric
    ), 1) as health_score
from accounts as a
inner join activity as act on a.account_id = act.account_id

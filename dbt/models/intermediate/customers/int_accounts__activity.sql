-- Per account: users, devices, device uptime, support tickets and app sessions, one aggregation each.
with users as (
    select
        account_id,
        count(*) as users
    from {{ ref('stg_app__users') }}
    group by 1
),

devices as (
    select
        account_id,
        count(*) as devices,
        sum(case when status = 'online' then 1 else 0 end) as online_devices
    from {{ ref('stg_app__devices') }}
    group by 1
),

uptime as (
    select
        d.account_id,
        avg(h.uptime_pct) as avg_uptime_pct
    from {{ ref('stg_iot__device_health') }} as h
    inner join {{ ref('stg_app__devices') }} as d on h.device_id = d.device_id
    group by 1
),

tickets as (
    select
        account_id,
        count(*) as tickets,
        sum(case when priority = 'HIGH' then 1 else 0 end) as high_priority_tickets
    from {{ ref('stg_hubspot__tickets') }}
    group by 1
),

sessions as (
    select
        account_id,
        count(*) as app_sessions
    from {{ ref('stg_app__user_sessions') }}
    group by 1
)

select
    a.account_id,
    coalesce(u.users, 0) as users,
    coalesce(d.devices, 0) as devices,
    coalesce(d.online_devices, 0) as online_devices,
    up.avg_uptime_pct,
    coalesce(t.tickets, 0) as tickets,
    coalesce(t.high_priority_tickets, 0) as high_priority_tickets,
    coalesce(s.app_sessions, 0) as app_sessions
from {{ ref('stg_app__accounts') }} as a
left join users as u on a.account_id = u.account_id
left join devices as d on a.account_id = d.account_id
left join uptime as up on a.account_id = up.account_id
left join tickets as t on a.account_id = t.account_id
left join sessions as s on a.account_id = s.account_id

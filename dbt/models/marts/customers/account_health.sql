-- One row per account: size, usage, device uptime and support load, combined into a 0-100 health score.
with accounts as (select * from {{ ref('stg_app__accounts') }}),

users as (
    select account_id, count(*) as users from {{ ref('stg_app__users') }} group by 1
),

devices as (
    select account_id, count(*) as devices,
           sum(case when status = 'online' then 1 else 0 end) as online_devices
    from {{ ref('stg_app__devices') }} group by 1
),

uptime as (
    select d.account_id, avg(h.uptime_pct) as avg_uptime_pct
    from {{ ref('stg_iot__device_health') }} h
    join {{ ref('stg_app__devices') }} d on d.device_id = h.device_id
    group by 1
),

tickets as (
    select account_id, count(*) as tickets,
           sum(case when priority = 'HIGH' then 1 else 0 end) as high_priority_tickets
    from {{ ref('stg_hubspot__tickets') }} group by 1
),

sessions as (
    select account_id, count(*) as app_sessions from {{ ref('stg_app__user_sessions') }} group by 1
)

select
    a.account_id,
    a.account_name,
    a.industry,
    a.tier,
    a.status,
    a.mrr_usd,
    coalesce(u.users, 0) as users,
    coalesce(d.devices, 0) as devices,
    coalesce(d.online_devices, 0) as online_devices,
    round(cast(t_up.avg_uptime_pct as numeric), 2) as avg_uptime_pct,
    coalesce(t.tickets, 0) as tickets,
    coalesce(t.high_priority_tickets, 0) as high_priority_tickets,
    coalesce(s.app_sessions, 0) as app_sessions,
    round(cast(
        40 * coalesce(t_up.avg_uptime_pct, 100) / 100
        + 30 * least(1.0, {{ safe_divide('coalesce(s.app_sessions, 0)', '50.0 * greatest(coalesce(u.users, 1), 1)') }})
        + 30 * (1 - least(1.0, {{ safe_divide('coalesce(t.tickets, 0)', 'greatest(coalesce(d.devices, 1), 1)') }}))
    as numeric), 1) as health_score
from accounts a
left join users u on u.account_id = a.account_id
left join devices d on d.account_id = a.account_id
left join uptime t_up on t_up.account_id = a.account_id
left join tickets t on t.account_id = a.account_id
left join sessions s on s.account_id = a.account_id

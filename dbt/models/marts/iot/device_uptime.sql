-- One row per device: uptime and errors over its last 30 days, pours and volume over its life.
with devices as (select * from {{ ref('stg_app__devices') }}),

health as (
    select device_id,
           avg(uptime_pct) as avg_uptime_pct,
           min(uptime_pct) as min_uptime_pct,
           sum(error_count) as errors_30d,
           sum(case when needs_maintenance then 1 else 0 end) as maintenance_days_30d
    from {{ ref('stg_iot__device_health') }}
    group by 1
),

pours as (
    select device_id, count(*) as pours, sum(volume_ml) / 1000.0 as litres_poured, max(poured_at) as last_pour_at
    from {{ ref('stg_iot__tap_events') }}
    group by 1
)

select
    d.device_id,
    d.location_id,
    d.account_id,
    d.model,
    d.status,
    d.installed_at,
    round(cast(h.avg_uptime_pct as numeric), 2) as avg_uptime_pct,
    round(cast(h.min_uptime_pct as numeric), 2) as min_uptime_pct,
    coalesce(h.errors_30d, 0) as errors_30d,
    coalesce(h.maintenance_days_30d, 0) as maintenance_days_30d,
    coalesce(p.pours, 0) as pours,
    round(cast(coalesce(p.litres_poured, 0) as numeric), 1) as litres_poured,
    p.last_pour_at
from devices d
left join health h on h.device_id = d.device_id
left join pours p on p.device_id = d.device_id

-- One row per device: uptime and errors over its last 30 days, pours and volume over its life.
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
from {{ ref('stg_app__devices') }} as d
left join {{ ref('int_iot__device_health_30d') }} as h on d.device_id = h.device_id
left join {{ ref('int_iot__device_pours') }} as p on d.device_id = p.device_id

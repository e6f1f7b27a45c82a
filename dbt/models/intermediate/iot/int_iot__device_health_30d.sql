-- Per device: uptime, errors and maintenance days over its last 30 days of health rows.
select
    device_id,
    avg(uptime_pct) as avg_uptime_pct,
    min(uptime_pct) as min_uptime_pct,
    sum(error_count) as errors_30d,
    sum(case when needs_maintenance then 1 else 0 end) as maintenance_days_30d
from {{ ref('stg_iot__device_health') }}
group by 1

-- Per device: pours, litres poured and the last pour over its whole life.
select
    device_id,
    count(*) as pours,
    sum(volume_ml) / 1000.0 as litres_poured,
    max(poured_at) as last_pour_at
from {{ ref('stg_iot__tap_events') }}
group by 1

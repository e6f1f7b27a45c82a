-- Cash collected per month: the successful charges created that month.
select
    cast(date_trunc('month', created_at) as date) as month_start,
    sum(amount_usd) as collected_usd,
    count(*) as charges
from {{ ref('stg_stripe__charges') }}
group by 1

-- Every paid invoice is covered by successful charges of exactly its amount.
{{ config(meta={'dagster': {'ref': {'name': 'stg_stripe__invoices'}}}) }}
select
    i.invoice_id,
    i.amount_paid_cents,
    coalesce(sum(c.amount_cents), 0) as charged_cents
from {{ ref('stg_stripe__invoices') }} as i
left join {{ ref('stg_stripe__charges') }} as c on i.invoice_id = c.invoice_id
where i.status = 'paid'
group by 1, 2
having coalesce(sum(c.amount_cents), 0) <> i.amount_paid_cents

-- Every paid invoice is covered by successful charges of exactly its amount.
{{ config(meta={'dagster': {'ref': {'name': 'stg_stripe__invoices'}}}) }}
select i.invoice_id, i.amount_paid, coalesce(sum(c.amount), 0) as charged
from {{ ref('stg_stripe__invoices') }} i
left join {{ ref('stg_stripe__charges') }} c on c.invoice_id = i.invoice_id
where i.status = 'paid'
group by 1, 2
having coalesce(sum(c.amount), 0) <> i.amount_paid

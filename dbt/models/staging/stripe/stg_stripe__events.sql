-- Staging model of raw.stripe_events: one row per Stripe event out of the webhook deliveries. Stripe delivers
-- at least once, so an event can arrive twice (kept once: its first delivery), and a delivery retried after
-- an outage arrives hours or days after the event (late). Incremental on received_at, the time a row landed:
-- a late event has an old created_at, so a filter on event time would never pick it up.
{{ config(materialized='incremental', on_schema_change='fail') }}

with deliveries as (
    select * from {{ source('stripe', 'events') }}
    {% if is_incremental() %}
    where received_at >= (select max(received_at) from {{ this }})
    {% endif %}
),

ranked as (
    select
        *,
        row_number() over (partition by event_id order by received_at, delivery_id) as delivery_rank
    from deliveries
),

renamed as (
    select
        event_id,
        delivery_id,
        type,
        object_type,
        object_id,
        customer_id,
        created as created_at,
        received_at,
        api_version,
        livemode
    from ranked
    where
        delivery_rank = 1
    {% if is_incremental() %}
        and not exists (select 1 from {{ this }} as seen where seen.event_id = ranked.event_id)
        {% endif %}
)

select * from renamed

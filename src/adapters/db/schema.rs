// @generated automatically by Diesel CLI.

diesel::table! {
    jobs (id) {
        id -> Text,
        kind -> Text,
        payload -> Text,
        site_id -> Nullable<Text>,
        state -> Text,
        attempts -> Integer,
        max_attempts -> Integer,
        run_at -> BigInt,
        lease_owner -> Nullable<Text>,
        lease_expires_at -> Nullable<BigInt>,
        last_error -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    outbox (site_id, notice) {
        site_id -> Text,
        notice -> Text,
        message_id -> Text,
        created_at -> BigInt,
        sent_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    plugins (tenant, name) {
        tenant -> Text,
        name -> Text,
        hash -> Text,
        module -> Binary,
        size -> BigInt,
        mutating -> Bool,
        validates_settings -> Bool,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    policy_bindings (tenant, position) {
        tenant -> Text,
        position -> Integer,
        plugin -> Text,
        hook -> Text,
        settings -> Text,
        on_error -> Text,
    }
}

diesel::table! {
    sites (id) {
        id -> Text,
        tenant -> Text,
        name -> Text,
        hostname -> Text,
        email -> Text,
        plan -> Nullable<Text>,
        state -> Text,
        step -> Nullable<Text>,
        version -> BigInt,
        stripe_customer_id -> Nullable<Text>,
        stripe_subscription_id -> Nullable<Text>,
        last_error -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
        stripe_event_at -> Nullable<BigInt>,
        payment_overdue_since -> Nullable<BigInt>,
        suspended_for -> Nullable<Text>,
        live_version -> Nullable<BigInt>,
        target_version -> Nullable<BigInt>,
        manage_token_hash -> Nullable<Text>,
        manage_token_nonce -> Nullable<Text>,
        paid_at -> Nullable<BigInt>,
        applied_spec -> Nullable<Text>,
        target_spec -> Nullable<Text>,
    }
}

diesel::table! {
    server_keys (name) {
        name -> Text,
        value -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    site_versions (site_id, number) {
        site_id -> Text,
        number -> BigInt,
        sha256 -> Text,
        size -> BigInt,
        html -> Text,
        created_by -> Text,
        state -> Text,
        error -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    stripe_events (id) {
        id -> Text,
        tenant -> Text,
        stripe_event_id -> Text,
        event_type -> Text,
        created_at -> BigInt,
        livemode -> Bool,
        api_version -> Nullable<Text>,
        object_id -> Nullable<Text>,
        customer_id -> Nullable<Text>,
        subscription_id -> Nullable<Text>,
        payload -> Text,
        outcome -> Text,
        detail -> Nullable<Text>,
        site_id -> Nullable<Text>,
        received_at -> BigInt,
        processed_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    rollouts (id) {
        id -> Text,
        tenant -> Text,
        state -> Text,
        max_parallel -> Integer,
        max_failures -> Integer,
        wave -> Integer,
        tick -> BigInt,
        reason -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
        finished_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    rollout_sites (rollout_id, site_id) {
        rollout_id -> Text,
        site_id -> Text,
        position -> Integer,
        from_spec -> Nullable<Text>,
        to_spec -> Text,
        state -> Text,
        wave -> Nullable<Integer>,
        error -> Nullable<Text>,
        updated_at -> BigInt,
    }
}

diesel::table! {
    workload_specs (sha256) {
        sha256 -> Text,
        tenant -> Text,
        spec -> Text,
        created_at -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    jobs,
    outbox,
    plugins,
    policy_bindings,
    rollout_sites,
    rollouts,
    server_keys,
    site_versions,
    sites,
    stripe_events,
    workload_specs,
);

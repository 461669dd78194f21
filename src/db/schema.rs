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
        html -> Nullable<Text>,
        plan -> Nullable<Text>,
        state -> Text,
        step -> Nullable<Text>,
        version -> BigInt,
        stripe_customer_id -> Nullable<Text>,
        stripe_subscription_id -> Nullable<Text>,
        last_error -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(jobs, outbox, plugins, policy_bindings, sites,);

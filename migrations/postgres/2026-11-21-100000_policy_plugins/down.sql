DROP TABLE policy_bindings;
DROP TABLE plugins;

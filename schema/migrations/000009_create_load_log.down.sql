DROP TABLE IF EXISTS ibcbench_loads;

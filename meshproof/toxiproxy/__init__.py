"""L4 faults through the toxiproxy v2 API: a built-in server and a client layer."""

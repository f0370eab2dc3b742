"""The Istio adapter: intents -> Istio resources (``render``), programmed = istiod's
per-proxy sync status (``syncz``) or else the sentinel method (``adapter``)."""

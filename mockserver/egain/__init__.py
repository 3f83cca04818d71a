"""eGain Core Customer Manager: merge customers and get customers by ids."""

"""Attribution methods for the detector's heads: BBAM (mask optimisation) and its proposals."""

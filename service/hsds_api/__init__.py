"""The HSDS 3.1 API under /hsds/: any Open Referral tool can read Signpost's directory."""

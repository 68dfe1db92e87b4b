"""The directory as other tools read it: an Open Referral HSDS 3.0 view (``hsds``) and a 3W
table (``threew``), on the ground both stand on (``common``).

Pure: builds plain objects and CSV rows from organisation records and the reference data;
``export_api.py`` serves them. Only ACTIVE organisations are exported (an applicant, a
suspended member or one that left is not part of the network's offer).
"""

"""ERP ↔ OZmap reconciliation: compare both sides, report every discrepancy, repair the safe ones.

One module per concept; the front door of a run is :func:`.pipeline.run_reconciliation`.

=================  =========================================================================
module             holds
=================  =========================================================================
``classes``        discrepancy classes: meaning, severity, repairable
``diff``           both sides as plain data, the merge by client code, classification
``repair_plan``    a repairable finding → the outbox rows that repair it
``scope``          units/projects → the OZmap projects a run compares
``staging``        the read model: both sides in a staging SQLite file
``scan``           reading OZmap into the read model, project by project
``parts``          a child run's scan of a project, handed to the parent through the database
``erp``            reading the ERP's reservations into the read model
``runs``           run rows; compare (store the findings); stored discrepancies
``repairs``        applying planned repairs through the outbox
``lock``           one reconciliation at a time per database
``steps``          the steps of a run (``Steps``) and their in-process form (``LocalSteps``)
``pipeline``       the run: lock, plan, work, record (``run_reconciliation``)
``report``         how a run reads to people: summary, failure, table, one line
=================  =========================================================================
"""

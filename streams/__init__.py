"""The stream processor: consume transactions, emit one risk decision per transaction.

Read first: :mod:`.processor` (everything the worker decides, Kafka-free),
then :mod:`.app` (the faust agents that move bytes), :mod:`.scoring` (the
trained pipeline behind the :class:`~.processor.Scoring` protocol) and
:mod:`.reference` (a deterministic toy scorer for tests and benchmarks).
``riskflow worker`` runs it; ``riskflow bench stream`` measures it.

Flow
----
A faust app (``build_app(config)``) runs two agents. The transactions agent
takes micro-batches (``stream.take_events(stream.max_batch_size,
within=stream.max_wait_ms)``); :meth:`~.processor.StreamProcessor.process_transactions`
validates each record (bad JSON, missing / invalid fields, unknown schema
version, oversized -> a dead letter carrying the error, the original bytes
base64 and topic / partition / offset), builds one ``TxBatch`` and calls the
scoring pipeline's ``score_batch`` (the same function replay calls). Each
decision goes to the decisions topic keyed by ``tx_id`` with decision,
calibrated score, reason codes, model and policy versions, per-stage timings
and the source offset. If scoring raises, every transaction of the batch gets
``stream.fallback_decision`` (approve = fail-open, decline = fail-closed)
flagged ``"fallback": true``: no valid transaction goes undecided.

The labels agent joins each label to its transaction through a bounded
``tx_id`` lookup (numeric entity keys only, kept in the snapshot) and hands
the resulting ``LabelBatch`` to the next scored batch. Labels are keyed by
``tx_id``, transactions by card, so a label often reaches a worker before
its transaction: on another worker's partition that this replica follows
only once committed, in the same fetch (labels are handled first), or in a
gap replay. Such a label waits (``stream.waiting_labels``, default 100k,
oldest dropped and counted in ``riskflow_labels_unmatched``; gauge
``riskflow_labels_waiting``; kept in the snapshot) and joins when its
transaction arrives, from the next batch on, at its label time: as if it had
arrived just after the transaction. (Before, it was dropped: a two-worker
run lost labels about one time in five.) Policy updates are read
by every worker from the compacted policy topic from its beginning (the
worker is not ready before it has read to the end) and applied between
batches, without a restart.

State and checkpointing
-----------------------
The processor's state (feature engine snapshot, tx lookup, pending labels)
is written atomically to ``state_dir/<app_id>-<instance>.snapshot`` every
``--checkpoint-interval`` seconds together with the **positions** (next
offset per topic/partition) it reflects, and only after that batch's output
was acknowledged by the broker (or its transaction committed). On restart,
per partition, with ``P`` the snapshot position and ``C`` the first offset
the group hands out (its committed offset):

* ``C > P``: offsets ``[P, C)`` were decided before the crash but are not in
  the state: they are replayed into the state without output, for every
  partition of both topics before the worker decides anything (a quiet
  labels partition too), and again per batch if the group moved on since;
* ``C < P``: offsets ``[C, P)`` are in the state and their decisions were
  produced: they are skipped (no double counting in features);
* a partition the state never saw is replayed from the start of its log.

So after ``kill -9`` features equal an uninterrupted run's and every
transaction has a decision. faust acks a ``take_events`` batch even when the
agent body is cancelled or raises, which would commit offsets of undecided
records; the agent marks such a batch as already acknowledged so faust never
commits it, and produce errors are retried with backoff instead of skipping.

Delivery guarantees
-------------------
``at_least_once`` (default): decisions are produced with an idempotent
producer (``acks=all``) before offsets are committed (faust, every second;
the bulk engine, every ``stream.commit_interval_ms``, 100 ms, up to the last
batch whose output is acknowledged). After a crash the decisions since that
commit may be produced again, with the same key and the same content (keys
make downstream upserts idempotent). The bulk engine does not wait for a
batch's acknowledgement before deciding the next (up to 4 batches in
flight; a checkpoint, a rebalance and a shutdown wait for them). Cost: none
per batch.

``exactly_once``: each batch's decisions, dead letters and input offsets are
written in one Kafka transaction (``send_offsets_to_transaction``) by a
producer whose ``transactional.id`` is ``<app_id>-<instance-id>``, so a
restarted instance fences its predecessor and aborts its open transaction; a
``read_committed`` reader sees each ``tx_id`` exactly once. Cost: one
transaction commit per batch (a few ms: larger ``max_wait_ms`` / batches
amortise it) and readers must use ``read_committed`` (they see decisions
only at commit). faust's own exactly-once mode is not used: it picks the
transactional id by the *output* partition, which only fits co-partitioned
outputs. These transactions are the only writer of the group's offsets:
the inputs are faust topics with ``acks=False``, so faust never commits them
(its timer, rebalance and shutdown commits of the acked position could land
after a transaction and move the offset back). A revocation waits for the
batch in flight (its transaction commits before the partitions move) and
batches fetched before it are dropped, to be fetched again by the partitions'
next owner from the committed offsets. Limits: fencing is per instance id
(give each worker a distinct, stable ``--instance-id``); a worker stalled past
the rebalance timeout can commit late, as aiokafka's transactional offset
commit does not carry the group generation (KIP-447).

Scale-out and cross-entity features
-----------------------------------
N workers share the consumer group ``stream.app_id``; transactions should be
keyed by card so card features are local. Features keyed by other entities
(merchant, device, IP, ...) need every transaction, so each worker's feature
state is a replica of the whole stream, like a faust GlobalTable: it scores
only its own partitions but also reads the partitions other workers own,
without output, up to the offsets the group has committed (records another
worker already decided). Labels are followed the same way. Consequences:

* model scoring (the expensive part) scales with N; feature updates are
  done N times (cheap numba updates), memory for state is per worker;
* features see other partitions' transactions after they are committed
  (commit interval 1 s with faust, 0.1 s with the bulk engine, + follow
  interval 0.25 s); in any parallel run their
  relative order across partitions is arrival order, not one global order;
* a partition moved in a rebalance always resumes at or after the new
  owner's replica position, so handover needs no state transfer; the
  follower reads owned partitions too, so the handover gap (records the
  previous owner decided since this replica last read them) is replayed
  off the deciding path within a follow interval, not by the first batch.

Repartition topics per entity (the Kafka Streams way) were not chosen: they
add one topic and one hop per entity family (seven here) to every decision's
latency and make one transaction's features depend on several asynchronous
joins.

Observability
-------------
``/metrics`` (Prometheus; own registry): consumed records, decisions by
decision, dead letters, fallback decisions, skipped redeliveries, replayed
records, policy updates, batch sizes, stage timings, latency histograms from
the input record's timestamp and from consume time, score distribution,
consumer lag. ``/health`` answers 200 only when the broker answers, the model
is loaded, the policy topic was read, partitions are assigned and producing
works (503 otherwise). Logs never carry transaction payloads.

Engines
-------
``riskflow worker --engine faust`` (default) runs the two faust agents above.
faust hands records to an agent one event at a time (a task switch and a
``wait_first`` per message), which on this 2-core machine caps a worker near
a few hundred to a few thousand records/s whatever the scorer.
``--engine bulk`` (:mod:`.bulk`) runs the very same worker (processor,
transactions, snapshots, gap replay, replica, policy follower, metrics,
health) but takes each micro-batch from one aiokafka group consumer's
``getmany(max_records=max_batch_size)`` (what arrived while the last batch
was decided; ``max_wait_ms`` is the faust engine's) and serves
``/metrics`` and ``/health`` with aiohttp; it commits offsets after each
batch's output (at-least-once) or inside its transaction (exactly-once).
Every integration test runs on both engines. ``riskflow bench stream`` uses
``bulk`` unless told otherwise.

Per-record cost
---------------
What the worker does per record outside scoring is kept to C-speed
builtins and numba: a batch is decoded by msgspec into typed structs and
validated column by column (:mod:`._columns`; the exact per-record validator
runs only when a batch holds something unusual, and names each bad record's
error), a batch's entity keys are hashed in one call
(:func:`riskflow.batch.hash_each`), output partitions come from
one compiled murmur2 pass (:mod:`._partition`), metrics are observed per
batch, and BLAS / torch are pinned to ``model.num_threads`` threads (by
default ``"auto"``: the CPUs the process may use). With ``model.num_threads`` > 1 a batch's ensemble scoring and
reason codes are split by rows between that many threads (the kernels
release the GIL and score each row alone, so the bits do not change); the
validation, the features and the Kafka I/O stay on the event loop's thread. Exactly-once commits one transaction per batch: batching
transactions over an interval would cut commits but hold every decision
invisible to ``read_committed`` readers until the commit, adding the interval
to latency; per batch, the commit is amortised by the batch itself, which
grows with the backlog (``getmany`` returns what is buffered, up to
``max_batch_size``). A checkpoint captures the state on the event loop
(array copies into the previous capture's buffers, about 0.2 s for the
~185 MB of a default feature engine on the loaded 2-core box) and
serialises, writes and fsyncs it in a thread (about 1 s), one at a time; the
capture still pauses deciding, so ``--checkpoint-interval`` trades tail
latency against the replay after a crash. ``riskflow bench stream`` reports what bounds the
worker (stage times per batch from ``/metrics``).
"""

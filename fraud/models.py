from __future__ import annotations

from collections.abc import Collection

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q


class Decision(models.TextChoices):
    APPROVE = "approve", "Approve"
    REVIEW = "review", "Review"
    DECLINE = "decline", "Decline"


class DecidedBy(models.TextChoices):
    """What gave a transaction its decision (the policy's precedence: docs/rules.md)."""

    MODEL = "model", "Model score"
    RULE = "rule", "Rule"
    LIST = "list", "List entry"


class Label(models.TextChoices):
    FRAUD = "fraud", "Fraud"
    LEGITIMATE = "legitimate", "Legitimate"


class LabelSource(models.TextChoices):
    CLIENT = "client", "API client feedback"
    ANALYST = "analyst", "Analyst decision"
    IMPORT = "import", "Historical import"
    GENERATOR = "generator", "Synthetic generator"


class Channel(models.TextChoices):
    ONLINE = "online", "Online"
    POS = "pos", "Point of sale"
    ATM = "atm", "ATM"
    MOTO = "moto", "Mail / telephone order"
    RECURRING = "recurring", "Recurring"
    OTHER = "other", "Other"


class ModelStatus(models.TextChoices):
    CANDIDATE = "candidate", "Candidate"
    ACTIVE = "active", "Active"
    RETIRED = "retired", "Retired"


# ModelVersion's large columns, left out of every join that does not load a model to score with.
MODEL_VERSION_BLOBS = ("model_version__artifact",)


class TransactionQuerySet(models.QuerySet["Transaction"]):
    def owned_by(self, owner_id: int) -> TransactionQuerySet:
        return self.filter(owner_id=owner_id)

    def for_customer(self, customer_id: str) -> TransactionQuerySet:
        return self.filter(customer_id=customer_id)

    def with_model_version(self) -> TransactionQuerySet:
        """Joins the model version without its ONNX artifact: a join that loads it reads the
        whole blob once per row (20 s for 2,000 rows), and only the scoring runtime needs it."""
        return self.select_related("model_version").defer(*MODEL_VERSION_BLOBS)


class ModelVersion(models.Model):
    """A trained model: its ONNX artifact (bytes kept in the database so every web and worker
    process, on any machine, loads the same thing), what it expects and how well it did."""

    version = models.CharField(max_length=64, unique=True)
    algorithm = models.CharField(max_length=64)
    artifact = models.BinaryField()
    artifact_sha256 = models.CharField(max_length=64)
    feature_set_version = models.CharField(max_length=16)
    feature_names = models.JSONField()
    # One value per feature, used to neutralise a feature group when explaining a score.
    neutral_values = models.JSONField()
    # The map from the model's output to a probability, fitted on the validation window
    # (``fraud.scoring.scorer.calibrate``); empty for none (models stored before calibration existed).
    calibration = models.JSONField(default=dict, blank=True)
    train_start = models.DateTimeField()
    train_end = models.DateTimeField()
    validation_start = models.DateTimeField()
    validation_end = models.DateTimeField()
    metrics = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=ModelStatus.choices, default=ModelStatus.CANDIDATE)
    # A challenger in shadow scores live traffic beside the active model; its scores are stored
    # but never decide anything.
    shadow = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # At most one active model, enforced by the database (a partial unique index), so two
            # concurrent activations cannot both win.
            models.UniqueConstraint(fields=["status"], condition=Q(status="active"), name="modelversion_one_active"),
            models.CheckConstraint(condition=Q(status__in=ModelStatus.values), name="modelversion_status_valid"),
            models.UniqueConstraint(fields=["shadow"], condition=Q(shadow=True), name="modelversion_one_shadow"),
            models.CheckConstraint(
                condition=~(Q(shadow=True) & Q(status="active")), name="modelversion_shadow_not_active"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.version} ({self.status})"


class Transaction(models.Model):
    """One scored payment, as the API client sent it, with the result we returned."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="transactions")
    transaction_id = models.CharField(max_length=64)
    customer_id = models.CharField(max_length=64)
    merchant_id = models.CharField(max_length=64)
    amount = models.DecimalField(max_digits=18, decimal_places=4)
    currency = models.CharField(max_length=3)
    country = models.CharField(max_length=2)
    channel = models.CharField(max_length=16, choices=Channel.choices, blank=True, default="")
    timestamp = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    # SHA-256 of the canonical request body: a retry with the same id must carry the same body.
    request_hash = models.CharField(max_length=64)
    # The card, when sent: never the PAN itself (see fraud/transactions/cards.py).
    card_first6 = models.CharField(max_length=6, blank=True, default="")
    card_last4 = models.CharField(max_length=4, blank=True, default="")
    card_fingerprint = models.CharField(max_length=64, blank=True, default="")
    card_ciphertext = models.TextField(blank=True, default="")

    fraud_score = models.FloatField(null=True, blank=True)
    decision = models.CharField(max_length=8, choices=Decision.choices, blank=True, default="")
    reasons = models.JSONField(default=list, blank=True)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    scored_at = models.DateTimeField(null=True, blank=True)
    shadow_score = models.FloatField(null=True, blank=True)
    shadow_model = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    # What decided (empty for history that was never scored); and every rule and list entry that
    # matched (fraud.rules.policy.Match.as_json), shadow rules included.
    decided_by = models.CharField(max_length=8, choices=DecidedBy.choices, blank=True, default="")
    rule_matches = models.JSONField(default=list, blank=True)

    label = models.CharField(max_length=16, choices=Label.choices, blank=True, default="")
    label_source = models.CharField(max_length=16, choices=LabelSource.choices, blank=True, default="")
    label_time = models.DateTimeField(null=True, blank=True)

    objects = TransactionQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "transaction_id"], name="transaction_unique_per_owner"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="transaction_amount_positive"),
            models.CheckConstraint(
                condition=Q(fraud_score__isnull=True) | Q(fraud_score__gte=0, fraud_score__lte=1),
                name="transaction_score_in_unit_interval",
            ),
            models.CheckConstraint(condition=Q(decision__in=["", *Decision.values]), name="transaction_decision_valid"),
            models.CheckConstraint(
                condition=Q(decided_by__in=["", *DecidedBy.values]), name="transaction_decided_by_valid"
            ),
            models.CheckConstraint(condition=Q(label__in=["", *Label.values]), name="transaction_label_valid"),
            models.CheckConstraint(
                condition=Q(label="") | Q(label_time__isnull=False), name="transaction_label_has_time"
            ),
        ]
        indexes = [
            # Feature reads: a customer's (and a merchant's) history strictly before a time. History
            # is per API client, so the owner leads both indexes. They carry every column the
            # online feature query reads, so it is answered from the indexes alone (an index-only
            # scan: 0.4 ms instead of 2.2 ms for a merchant's 37 days of ~240 rows).
            models.Index(
                fields=["owner", "customer_id", "-timestamp"],
                include=["amount", "merchant_id", "country", "currency"],
                name="tx_customer_cover_cur",
            ),
            models.Index(
                fields=["owner", "merchant_id", "-timestamp"], include=["label", "label_time"], name="tx_merchant_cover"
            ),
            # Known fraud at a merchant: a small partial index keeps the merchant-risk count cheap;
            # with the label time, the feature store finds the labels known only after t in it.
            models.Index(
                fields=["owner", "merchant_id", "timestamp"],
                include=["label_time"],
                condition=Q(label="fraud"),
                name="tx_merchant_fraud",
            ),
            models.Index(fields=["-fraud_score", "-timestamp"], name="tx_score_time"),
            models.Index(
                fields=["owner", "card_fingerprint", "-timestamp"],
                condition=~Q(card_fingerprint=""),
                name="tx_card_time",
            ),
            models.Index(fields=["owner", "-timestamp", "-id"], name="tx_owner_time"),
            models.Index(fields=["timestamp"], name="tx_time"),
        ]

    def __str__(self) -> str:
        return f"{self.transaction_id} ({self.decision or 'unscored'})"

    @property
    def card_masked(self) -> str:
        return f"{self.card_first6}······{self.card_last4}" if self.card_first6 else ""


class FeatureBucket(models.Model):
    """One entity's transactions in one hour or day: the online feature store
    (``fraud.features.buckets``). Written only by the database's triggers on the transaction
    table, never by the application; ``manage.py feature_store`` rebuilds and checks it."""

    pk = models.CompositePrimaryKey("owner_id", "kind", "key", "span", "start")
    owner_id = models.BigIntegerField()  # no foreign key: a check per bucket write, and owners are never deleted
    kind = models.CharField(max_length=2)  # c customer, m merchant, k card, cm customer at merchant, cc in country
    key = models.CharField(max_length=129)
    span = models.CharField(max_length=1)  # h hour, d day (UTC)
    start = models.DateTimeField()
    n = models.BigIntegerField()
    amount_sum = models.DecimalField(max_digits=30, decimal_places=4)
    amount_sumsq = models.DecimalField(max_digits=44, decimal_places=8)
    amount_max = models.DecimalField(max_digits=18, decimal_places=4)
    last_ts = models.DateTimeField()
    fraud_n = models.BigIntegerField()  # labelled fraud, with a label time

    class Meta:
        db_table = "fraud_feature_bucket"

    def __str__(self) -> str:
        return f"{self.kind}:{self.key} {self.span} {self.start:%Y-%m-%d %H:%M} n={self.n}"


class DecisionThresholds(models.Model):
    """The stored decision thresholds: one row, changed by admins without a restart."""

    singleton = models.PositiveSmallIntegerField(default=1, unique=True, editable=False)
    review_threshold = models.FloatField()
    decline_threshold = models.FloatField()
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = "decision thresholds"
        verbose_name_plural = "decision thresholds"
        constraints = [
            models.CheckConstraint(condition=Q(singleton=1), name="thresholds_single_row"),
            models.CheckConstraint(
                condition=Q(review_threshold__gte=0, decline_threshold__lte=1)
                & Q(review_threshold__lt=models.F("decline_threshold")),
                name="thresholds_ordered_in_unit_interval",
            ),
        ]

    def __str__(self) -> str:
        return f"review ≥ {self.review_threshold}, decline ≥ {self.decline_threshold}"

    @staticmethod
    def problems(*, review: float, decline: float) -> dict[str, str]:
        """What is wrong with a pair of thresholds, as a sentence per field (empty when the pair
        meets ``thresholds_ordered_in_unit_interval``). The services and the forms say the same."""
        problems = {}
        for field, value in (("review_threshold", review), ("decline_threshold", decline)):
            if not 0.0 <= value <= 1.0:  # NaN fails too
                problems[field] = "Thresholds are probabilities: between 0 and 1."
        if not problems and not review < decline:
            problems["review_threshold"] = (
                f"The review threshold must be lower than the decline threshold ({review:g} ≥ {decline:g})."
            )
        return problems

    def validate_constraints(self, exclude: Collection[str] | None = None) -> None:
        # Here rather than in clean(): a form passes the fields it refused ("Enter a number.") in
        # ``exclude``, and their stored values must not be compared with the new ones. Django's
        # own check of the constraint would only name it.
        review, decline = self.review_threshold, self.decline_threshold
        if (
            review is not None
            and decline is not None
            and not set(exclude or ()) & {"review_threshold", "decline_threshold"}
        ):
            problems = self.problems(review=review, decline=decline)
            if problems:
                raise ValidationError(problems)
        super().validate_constraints(exclude)


class CaseStatus(models.TextChoices):
    OPEN = "open", "Open"
    IN_REVIEW = "in_review", "In review"
    ESCALATED = "escalated", "Escalated"
    CLOSED = "closed", "Closed"


class CaseOutcome(models.TextChoices):
    CONFIRMED_FRAUD = "confirmed_fraud", "Confirmed fraud"
    LEGITIMATE = "legitimate", "Legitimate"
    INCONCLUSIVE = "inconclusive", "Inconclusive"


class CaseQuerySet(models.QuerySet["Case"]):
    def active(self) -> CaseQuerySet:
        return self.exclude(status=CaseStatus.CLOSED)

    def overdue(self, now: object) -> CaseQuerySet:
        return self.active().filter(due_at__lt=now)


class Case(models.Model):
    """A flagged transaction awaiting an analyst's verdict."""

    transaction = models.OneToOneField(Transaction, on_delete=models.PROTECT, related_name="case")
    status = models.CharField(max_length=16, choices=CaseStatus.choices, default=CaseStatus.OPEN)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="assigned_cases"
    )
    # Higher first: the score weighted by the money at stake (see fraud.cases.services.case_priority).
    priority = models.FloatField()
    # Copied from the transaction so the queue filters and sorts on one table.
    score = models.FloatField()
    amount = models.DecimalField(max_digits=18, decimal_places=4)
    opened_at = models.DateTimeField()
    due_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=CaseOutcome.choices, blank=True, default="")

    objects = CaseQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(status__in=CaseStatus.values), name="case_status_valid"),
            models.CheckConstraint(
                condition=(Q(status="closed") & ~Q(outcome="") & Q(closed_at__isnull=False))
                | (~Q(status="closed") & Q(outcome="") & Q(closed_at__isnull=True)),
                name="case_closed_iff_outcome",
            ),
        ]
        indexes = [
            # "Take next": the best unassigned active case.
            models.Index(
                fields=["status", "-priority", "opened_at"], name="case_queue", condition=Q(assignee__isnull=True)
            ),
            models.Index(fields=["assignee", "status"], name="case_assignee"),
            models.Index(fields=["status", "due_at"], name="case_due"),
            models.Index(fields=["-opened_at"], name="case_opened"),
        ]

    def __str__(self) -> str:
        return f"Case {self.pk} ({self.status})"


class CaseNote(models.Model):
    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    body = models.TextField(max_length=5000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"Note {self.pk} on case {self.case_id}"


class BatchStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class BatchJob(models.Model):
    """A file or list of transactions scored in the background, chunk by chunk.

    Progress is ``chunks_done``: a chunk's items, its counts and this number move in one
    database transaction, so a worker killed mid-chunk leaves nothing half-written and the next
    worker resumes at the first unfinished chunk."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="batch_jobs")
    source = models.CharField(max_length=8)  # "csv" or "json"
    filename = models.CharField(max_length=255, blank=True, default="")
    status = models.CharField(max_length=16, choices=BatchStatus.choices, default=BatchStatus.QUEUED)
    total = models.PositiveIntegerField(default=0)
    scored = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    chunk_count = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The last sign of life: a chunk committed, or the job was (re)dispatched.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Which task chain carries the job on: a resume starts a new one, and a task of an older chain
    # still does one chunk but queues no successor, so the job never runs on two chains for long.
    dispatch = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=BatchStatus.values), name="batchjob_status_valid"),
            models.CheckConstraint(
                condition=Q(chunks_done__lte=models.F("chunk_count")), name="batchjob_progress_bounded"
            ),
        ]
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="batch_owner"),
            models.Index(fields=["status", "heartbeat_at"], name="batch_status"),
        ]

    def __str__(self) -> str:
        return f"Batch {self.pk} ({self.status}, {self.chunks_done}/{self.chunk_count} chunks)"

    @property
    def progress(self) -> float:
        return 1.0 if self.chunk_count == 0 else self.chunks_done / self.chunk_count


class BatchChunk(models.Model):
    """The raw rows of one chunk, as uploaded; emptied once the chunk is processed."""

    job = models.ForeignKey(BatchJob, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    # The job's rows are dealt into lanes by customer, and lanes are scored in parallel: a lane's
    # chunks in index order, each customer's rows in one lane (fraud.batches.services).
    lane = models.PositiveSmallIntegerField(default=0)
    first_row = models.PositiveIntegerField()  # 1-based row number of rows[0] (the CSV header is row 0)
    # The row number of each row when they are not first_row, first_row + 1, ... (several lanes).
    row_numbers = models.JSONField(null=True, blank=True)
    # When the task for this chunk was last queued (the lane's previous chunk committed, or a
    # resume); unset: when the job was created. A lane whose next chunk waited too long, unlocked,
    # has lost its task (fraud.batches.services.batch_jobs_resume_stalled).
    queued_at = models.DateTimeField(null=True, blank=True)
    rows = models.JSONField(null=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="batchchunk_unique")]

    def __str__(self) -> str:
        return f"Chunk {self.index} of batch {self.job_id}"


class BatchItem(models.Model):
    """The outcome of one input row: scored (201), replayed (200), invalid (400) or a
    conflicting id (409). Unique per row, so a re-run chunk cannot write a row twice."""

    job = models.ForeignKey(BatchJob, on_delete=models.CASCADE, related_name="items")
    row = models.PositiveIntegerField()
    status = models.PositiveSmallIntegerField()
    transaction = models.ForeignKey(Transaction, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    # The row's transaction_id as uploaded (when it was text of a valid length), so that a refused
    # row is reported under the id its sender knows it by.
    submitted_id = models.CharField(max_length=64, blank=True, default="")
    errors = models.JSONField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "row"], name="batchitem_unique_row")]

    def __str__(self) -> str:
        return f"Row {self.row} of batch {self.job_id}: {self.status}"


class DriftReport(models.Model):
    """One day of live traffic against a model's training data: population stability index of
    the score and of every feature."""

    day = models.DateField()
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="drift_reports")
    n = models.PositiveIntegerField()
    score_psi = models.FloatField()
    feature_psi = models.JSONField()
    created_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-day"]
        constraints = [models.UniqueConstraint(fields=["day", "model_version"], name="drift_one_per_day_and_model")]

    def __str__(self) -> str:
        return f"Drift {self.day} {self.model_version_id}: score PSI {self.score_psi:.3f}"


# --- Lists and rules beside the model (#9) --------------------------------------------------------


class ListKind(models.TextChoices):
    CARD = "card", "Card"
    CUSTOMER = "customer", "Customer"
    MERCHANT = "merchant", "Merchant"
    COUNTRY = "country", "Country"
    IP = "ip", "IP range"


# Kinds whose values are an API client's own identifiers: an entry names the client it is about.
OWNED_LIST_KINDS = (ListKind.CARD, ListKind.CUSTOMER, ListKind.MERCHANT)


class ListAction(models.TextChoices):
    BLOCK = "block", "Block"
    ALLOW = "allow", "Allow"


class ListEntry(models.Model):
    """One allow or block entry. Cards are stored as their keyed fingerprint (never the number),
    IP ranges as normalised CIDR. Removing an entry keeps the row (``removed_at``): scoring
    ignores it, the audit trail and past decisions still name it."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )  # the API client the customer/merchant/card belongs to; None for countries and IP ranges of every client
    kind = models.CharField(max_length=16, choices=ListKind.choices)
    value = models.CharField(max_length=64)
    display = models.CharField(max_length=64)  # what people see: the value, or "411111…1111" for a card
    action = models.CharField(max_length=8, choices=ListAction.choices)
    overriding = models.BooleanField(default=False)  # an allow entry that beats block entries
    reason = models.TextField()
    expires_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    removed_at = models.DateTimeField(null=True, blank=True)
    removed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "list entries"
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=ListKind.values), name="listentry_kind_valid"),
            models.CheckConstraint(condition=Q(action__in=ListAction.values), name="listentry_action_valid"),
            # What the admin's form says when it refused another field first (the rules services'
            # list_entry_check says it at the field otherwise).
            models.CheckConstraint(
                condition=Q(overriding=False) | Q(action=ListAction.ALLOW),
                name="listentry_only_allow_overrides",
                violation_error_message="Only an allow entry can override block entries: untick overriding, or choose allow.",
            ),
            models.CheckConstraint(
                condition=~Q(kind__in=OWNED_LIST_KINDS) | Q(owner__isnull=False),
                name="listentry_client_values_owned",
                violation_error_message="A card, customer or merchant entry belongs to an API client: choose it as the owner.",
            ),
            models.UniqueConstraint(
                fields=["owner", "kind", "value", "action"],
                condition=Q(removed_at__isnull=True, owner__isnull=False),
                name="listentry_unique_live_owned",
            ),
            models.UniqueConstraint(
                fields=["kind", "value", "action"],
                condition=Q(removed_at__isnull=True, owner__isnull=True),
                name="listentry_unique_live_global",
            ),
        ]
        indexes = [models.Index(fields=["kind", "value"], name="listentry_lookup")]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.get_kind_display().lower()} {self.display}"


class RuleStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    DISABLED = "disabled", "Disabled"


class Rule(models.Model):
    """One version of a named rule. Editing makes a new draft version; activating one (admins
    only) disables the rule's previous active version, so at most one version of a name is live.
    A shadow rule records its matches and decides nothing."""

    name = models.CharField(max_length=100)
    version = models.PositiveIntegerField()
    description = models.TextField(blank=True, default="")
    condition = models.TextField()  # fraud.rules.expressions; checked when saved
    action = models.CharField(max_length=8, choices=Decision.choices)
    priority = models.IntegerField(default=0)  # higher runs first
    shadow = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=RuleStatus.choices, default=RuleStatus.DRAFT)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    activated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="rule_unique_version"),
            models.UniqueConstraint(
                fields=["name"], condition=Q(status=RuleStatus.ACTIVE), name="rule_one_active_version"
            ),
            models.CheckConstraint(condition=Q(action__in=Decision.values), name="rule_action_valid"),
            models.CheckConstraint(condition=Q(status__in=RuleStatus.values), name="rule_status_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version} ({self.status})"


class BacktestStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class Backtest(models.Model):
    """A rule version and/or new thresholds run over a window of history beside the current
    setup, as a background job (fraud.backtests)."""

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    rule = models.ForeignKey(Rule, on_delete=models.PROTECT, null=True, blank=True, related_name="backtests")
    review_threshold = models.FloatField(null=True, blank=True)
    decline_threshold = models.FloatField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=BacktestStatus.choices, default=BacktestStatus.QUEUED)
    progress = models.FloatField(default=0.0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    result = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(window_end__gt=models.F("window_start")), name="backtest_window_ordered"
            ),
            models.CheckConstraint(
                condition=Q(rule__isnull=False) | Q(review_threshold__isnull=False), name="backtest_tests_something"
            ),
        ]

    def __str__(self) -> str:
        return f"Backtest {self.pk} ({self.status})"


class WebhookEventType(models.TextChoices):
    TRANSACTION_FLAGGED = "transaction.flagged", "A transaction was declined or sent to review"
    CASE_CLOSED = "case.closed", "An analyst closed a case"
    TRANSACTION_LABELLED = "transaction.labelled", "A transaction was labelled fraud or legitimate"
    BATCH_JOB_FINISHED = "batch_job.finished", "A batch job succeeded, failed or was cancelled"
    MODEL_ACTIVATED = "model.activated", "A model version went live (admins' endpoints)"


class WebhookEndpoint(models.Model):
    """Where an API client (or an admin) wants events posted, and with what secret they are signed.

    The secrets are stored encrypted (they must be read back to sign, so they cannot be hashed).
    During a rotation both the new and the previous secret sign every message until
    ``previous_secret_expires_at``, so a receiver can switch at its own pace."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="webhook_endpoints")
    url = models.CharField(max_length=2000)
    description = models.CharField(max_length=200, blank=True, default="")
    event_types = models.JSONField(default=list)
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=500, blank=True, default="")
    disabled_at = models.DateTimeField(null=True, blank=True)
    # The first failure since the last success: an endpoint failing for WEBHOOK_DISABLE_AFTER is disabled.
    failing_since = models.DateTimeField(null=True, blank=True)
    secret = models.TextField()
    previous_secret = models.TextField(blank=True, default="")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["pk"]
        indexes = [models.Index(fields=["owner", "enabled"], name="webhook_endpoint_owner")]

    def __str__(self) -> str:
        return f"Webhook endpoint {self.pk} ({self.url})"


class WebhookEvent(models.Model):
    """The outbox: one row per event, written in the same database transaction as the change
    that caused it, so a rolled-back change leaves no event and a committed one always has it."""

    event_id = models.UUIDField(unique=True)
    type = models.CharField(max_length=40, choices=WebhookEventType.choices)
    # The API client whose data it is; empty for platform events (a model going live).
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    api_version = models.CharField(max_length=16)
    data = models.JSONField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "-created_at"], name="webhook_event_owner")]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"


class WebhookDeliveryStatus(models.TextChoices):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # gave up: retries exhausted, the endpoint answered 410, or it was disabled


class WebhookDelivery(models.Model):
    """One event for one endpoint, and where its delivery stands. The worker that sends it first
    takes a lease (``lease_until``) with a conditional UPDATE; a worker killed mid-send leaves the
    row pending, and once the lease runs out the next sweep sends it again."""

    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(
        max_length=16, choices=WebhookDeliveryStatus.choices, default=WebhookDeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(fields=["event", "endpoint"], name="webhook_delivery_once"),
            models.CheckConstraint(
                condition=Q(status__in=WebhookDeliveryStatus.values), name="webhook_delivery_status_valid"
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="webhook_delivery_due",
                condition=Q(status=WebhookDeliveryStatus.PENDING),
            ),
            models.Index(fields=["endpoint", "-created_at"], name="webhook_delivery_endpoint"),
        ]

    def __str__(self) -> str:
        return f"Delivery {self.pk} ({self.status})"


class WebhookAttempt(models.Model):
    """One POST of a delivery: the delivery log an endpoint's owner reads."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    attempted_at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True, default="")
    duration_ms = models.FloatField()
    response_excerpt = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["-attempted_at"]
        indexes = [models.Index(fields=["delivery", "-attempted_at"], name="webhook_attempt_delivery")]

    def __str__(self) -> str:
        return f"Attempt {self.number} of delivery {self.delivery_id}"

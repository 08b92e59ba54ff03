"""Objects that are known not to load as-is, by name: what the best-known connector learned from real orgs.

Salesforce publishes no such list; these are the peer connector's (Airbyte ``source-salesforce``,
``api.py`` at 2ad34fd, API v57.0), summarised in ``shared/docs/salesforce-org-scale.md``. They are
version specific: a name here is a reason recorded in the discovered catalog, which an override can undo.
"""

from __future__ import annotations

# describeGlobal says queryable, but no query works without an object Id (Airbyte UNSUPPORTED_STREAMS)
NEEDS_OBJECT_ID = frozenset({"ActivityMetric", "ActivityMetricRollup"})

# WHERE-clause restrictions: a query must filter a key field (QUERY_RESTRICTED_SALESFORCE_OBJECTS)
NEEDS_FILTER = frozenset(
    {
        "Announcement", "AppTabMember", "CollaborationGroupRecord", "ColorDefinition", "ContentDocumentLink",
        "ContentFolderItem", "ContentFolderMember", "DataStatistics", "DatacloudDandBCompany", "EntityParticle",
        "FieldDefinition", "FieldHistoryArchive", "FlexQueueItem", "FlowVariableView", "FlowVersionView",
        "IconDefinition", "IdeaComment", "NetworkUserHistoryRecent", "OwnerChangeOptionInfo", "PicklistValueInfo",
        "PlatformAction", "RelationshipDomain", "RelationshipInfo", "SearchLayout", "SiteDetail",
        "UserEntityAccess", "UserFieldAccess", "Vote",
    }
)  # fmt: skip

# not supported by the query method at all (QUERY_INCOMPATIBLE_SALESFORCE_OBJECTS)
INCOMPATIBLE = frozenset(
    {
        "AIPredictionEvent", "ActivityHistory", "AggregateResult", "ApiAnomalyEvent", "ApiEventStream",
        "AssetTokenEvent", "AsyncOperationEvent", "AsyncOperationStatus", "AttachedContentDocument",
        "AttachedContentNote", "BatchApexErrorEvent", "BulkApiResultEvent", "CombinedAttachment",
        "ConcurLongRunApexErrEvent", "ContentBody", "CredentialStuffingEvent", "DataType", "DatacloudAddress",
        "EmailStatus", "FeedLike", "FeedSignal", "FeedTrackedChange", "FlowExecutionErrorEvent",
        "FolderedContentDocument", "LightningUriEventStream", "ListViewChartInstance", "ListViewEventStream",
        "LoginAsEventStream", "LoginEventStream", "LogoutEventStream", "LookedUpFromActivity", "Name",
        "NoteAndAttachment", "OpenActivity", "OrgLifecycleNotification", "OutgoingEmail", "OutgoingEmailRelation",
        "OwnedContentDocument", "PlatformStatusAlertEvent", "ProcessExceptionEvent", "ProcessInstanceHistory",
        "QuoteTemplateRichTextData", "RemoteKeyCalloutEvent", "ReportAnomalyEvent", "ReportEventStream",
        "SessionHijackingEvent", "UriEventStream", "UserRecordAccess",
    }
)  # fmt: skip

# Bulk API refuses them ("not supported by the Bulk API"): REST queryAll instead
# (UNSUPPORTED_BULK_API_SALESFORCE_OBJECTS; names also in INCOMPATIBLE are skipped before this applies)
NOT_BULK = frozenset(
    {
        "AcceptedEventRelation", "AssetTokenEvent", "Attachment", "AttachedContentNote", "CaseStatus",
        "ContractStatus", "DeclinedEventRelation", "EventWhoRelation", "FieldSecurityClassification",
        "KnowledgeArticle", "KnowledgeArticleVersion", "KnowledgeArticleVersionHistory", "KnowledgeArticleViewStat",
        "KnowledgeArticleVoteStat", "OrderStatus", "PartnerRole", "QuoteTemplateRichTextData", "RecentlyViewed",
        "ServiceAppointmentStatus", "ShiftStatus", "SolutionStatus", "TaskPriority", "TaskStatus", "TaskWhoRelation",
        "UndecidedEventRelation", "WorkOrderLineItemStatus", "WorkOrderStatus", "UserRecordAccess",
        "OwnedContentDocument", "OpenActivity", "NoteAndAttachment", "Name", "LookedUpFromActivity",
        "FolderedContentDocument", "ContentFolderItem", "CombinedAttachment", "CaseTeamTemplateRecord",
        "CaseTeamTemplateMember", "CaseTeamTemplate", "CaseTeamRole", "CaseTeamMember", "AttachedContentDocument",
        "AggregateResult", "ChannelProgramLevelShare", "AccountBrandShare", "AccountFeed", "AssetFeed",
    }
)  # fmt: skip

# a cursor WHERE is refused: always reloaded in full (UNSUPPORTED_FILTERING_STREAMS)
NO_CURSOR_FILTER = frozenset(
    {
        "ApiEvent", "BulkApiResultEventStore", "ContentDocumentLink", "EmbeddedServiceDetail", "EmbeddedServiceLabel",
        "FormulaFunction", "FormulaFunctionAllowedType", "FormulaFunctionCategory", "IdentityProviderEventStore",
        "IdentityVerificationEvent", "LightningUriEvent", "ListViewEvent", "LoginAsEvent", "LoginEvent",
        "LogoutEvent", "Publisher", "RecordActionHistory", "ReportEvent", "TabDefinition", "UriEvent",
    }
)  # fmt: skip

# Bulk API 2.0 job-creation errors that mean "this object (or a field of it) is not for Bulk": the run is
# demoted to REST for that object (the peer connector's BulkNotSupportedException strings)
BULK_REFUSALS = (
    "is not supported by the Bulk API",
    "Selecting compound data not supported in Bulk Query",
    "Bulk API does not support",
    "DailyBulkV2QueryJobs",  # the org's daily query jobs are used up (the emulator's wording; see docs/emulator.md)
)


def name_reason(name: str) -> str | None:
    """Why an object is skipped by its name alone, before any describe; None if its name is fine."""
    if name.endswith("ChangeEvent"):
        return "change events cannot be queried by REST or Bulk (read them with the Pub/Sub or Streaming API)"
    if name in INCOMPATIBLE:
        return "not supported by the query methods (known incompatible object)"
    if name in NEEDS_OBJECT_ID:
        return "cannot be queried without an object Id"
    return None


def is_bulk_refusal(message: str) -> bool:
    return any(text in message for text in BULK_REFUSALS)

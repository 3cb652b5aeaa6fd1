from rest_framework import serializers

from ..models import AuditEntry


class PortalAuditEntrySerializer(serializers.ModelSerializer):
    model = serializers.SerializerMethodField(help_text='The changed object\'s type, "app_label.modelname".')
    before = serializers.JSONField(allow_null=True, help_text="Field values before the change (null on creation).")
    after = serializers.JSONField(allow_null=True, help_text="Field values after the change (null on deletion).")
    changed_fields = serializers.ListField(child=serializers.CharField())

    class Meta:
        model = AuditEntry
        fields = [
            "id",
            "at",
            "actor",
            "actor_name",
            "token_name",
            "via",
            "ip",
            "action",
            "model",
            "object_id",
            "object_repr",
            "changed_fields",
            "before",
            "after",
        ]
        read_only_fields = fields

    def get_model(self, entry: AuditEntry) -> str:
        return f"{entry.content_type.app_label}.{entry.content_type.model}"

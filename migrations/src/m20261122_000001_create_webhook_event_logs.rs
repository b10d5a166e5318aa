//! `webhook_event_logs`: one row per distinct DCS webhook delivery.
//!
//! DCS retries a failed delivery with the identical body and signature and sends no delivery id,
//! so the SHA-256 of the raw body is the replay key: `body_sha256` is UNIQUE and a second
//! delivery of the same bytes is recognised as a duplicate instead of being processed again.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const STATUS_RECEIVED_AT_INDEX: &str = "idx_webhook_event_logs_status_received_at";
const RECEIVED_AT_INDEX: &str = "idx_webhook_event_logs_received_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebhookEventLogs::Table)
                    .col(
                        ColumnDef::new(WebhookEventLogs::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(WebhookEventLogs::EventType)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookEventLogs::BodySha256)
                            .char_len(64)
                            .not_null()
                            .unique_key(),
                    )
                    // The raw body as received: kept verbatim (not re-serialised JSON) so a
                    // stored event can be re-verified and audited, even when it did not parse.
                    .col(ColumnDef::new(WebhookEventLogs::Payload).text().not_null())
                    // received | processed | failed | ignored (validated by the application).
                    .col(
                        ColumnDef::new(WebhookEventLogs::Status)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(ColumnDef::new(WebhookEventLogs::Error).text().null())
                    .col(
                        ColumnDef::new(WebhookEventLogs::ReceivedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookEventLogs::ProcessedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;

        // Finding failed or stuck events ("status = 'failed' ORDER BY received_at").
        manager
            .create_index(
                Index::create()
                    .name(STATUS_RECEIVED_AT_INDEX)
                    .table(WebhookEventLogs::Table)
                    .col(WebhookEventLogs::Status)
                    .col(WebhookEventLogs::ReceivedAt)
                    .to_owned(),
            )
            .await?;

        // Retention pruning ("received_at < cutoff").
        manager
            .create_index(
                Index::create()
                    .name(RECEIVED_AT_INDEX)
                    .table(WebhookEventLogs::Table)
                    .col(WebhookEventLogs::ReceivedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(WebhookEventLogs::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum WebhookEventLogs {
    Table,
    Id,
    EventType,
    BodySha256,
    Payload,
    Status,
    Error,
    ReceivedAt,
    ProcessedAt,
}

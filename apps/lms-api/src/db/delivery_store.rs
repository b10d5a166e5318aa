//! [`DeliveryStore`] over `webhook_event_logs`: the delivery log's records, deduplicated by the
//! unique body digest. Every write is one conditional statement, so the database decides
//! between concurrent writers.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::ports::{DeliveryRecord, DeliveryStatus, DeliveryStore, StoreError};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    TryInsertResult,
};
use uuid::Uuid;

use super::store_error;

use crate::db::entities::webhook_event_log::{
    ActiveModel, Column, Entity, Model, WebhookEventStatus,
};

/// The delivery store on the app's database.
#[derive(Debug, Clone)]
pub struct SqlDeliveryStore {
    db: DatabaseConnection,
}

impl SqlDeliveryStore {
    /// The store over `db` (migrated).
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

fn to_row_status(status: DeliveryStatus) -> WebhookEventStatus {
    match status {
        DeliveryStatus::Received => WebhookEventStatus::Received,
        DeliveryStatus::Processed => WebhookEventStatus::Processed,
        DeliveryStatus::Failed => WebhookEventStatus::Failed,
        DeliveryStatus::Ignored => WebhookEventStatus::Ignored,
    }
}

fn to_status(status: WebhookEventStatus) -> DeliveryStatus {
    match status {
        WebhookEventStatus::Received => DeliveryStatus::Received,
        WebhookEventStatus::Processed => DeliveryStatus::Processed,
        WebhookEventStatus::Failed => DeliveryStatus::Failed,
        WebhookEventStatus::Ignored => DeliveryStatus::Ignored,
    }
}

fn to_record(row: Model) -> DeliveryRecord {
    DeliveryRecord {
        id: row.id,
        event_type: row.event_type,
        body_sha256: row.body_sha256,
        payload: row.payload,
        status: to_status(row.status),
        error: row.error,
        received_at: row.received_at,
        processed_at: row.processed_at,
    }
}

#[async_trait]
impl DeliveryStore for SqlDeliveryStore {
    async fn insert_if_absent(&self, record: &DeliveryRecord) -> Result<bool, StoreError> {
        let row = ActiveModel {
            id: ActiveValue::Set(record.id),
            event_type: ActiveValue::Set(record.event_type.clone()),
            body_sha256: ActiveValue::Set(record.body_sha256.clone()),
            payload: ActiveValue::Set(record.payload.clone()),
            status: ActiveValue::Set(to_row_status(record.status)),
            error: ActiveValue::Set(record.error.clone()),
            received_at: ActiveValue::Set(record.received_at),
            processed_at: ActiveValue::Set(record.processed_at),
        };
        // The unique digest decides between concurrent deliveries: the losers insert nothing.
        let inserted = Entity::insert(row)
            .on_conflict_do_nothing_on([Column::BodySha256])
            .exec_without_returning(&self.db)
            .await
            .map_err(store_error)?;
        Ok(matches!(inserted, TryInsertResult::Inserted(rows) if rows > 0))
    }

    async fn find(&self, id: Uuid) -> Result<Option<DeliveryRecord>, StoreError> {
        let row = Entity::find_by_id(id)
            .one(&self.db)
            .await
            .map_err(store_error)?;
        Ok(row.map(to_record))
    }

    async fn find_by_digest(
        &self,
        body_sha256: &str,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        let row = Entity::find()
            .filter(Column::BodySha256.eq(body_sha256))
            .one(&self.db)
            .await
            .map_err(store_error)?;
        Ok(row.map(to_record))
    }

    async fn take_over(
        &self,
        id: Uuid,
        event_type: &str,
        now: DateTime<Utc>,
        abandoned_before: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        // On SQLite timestamps are RFC 3339 text, always in UTC ("+00:00"); such strings sort
        // in time order, so `<=` compares instants there as it does on PostgreSQL.
        let claimable = Column::Status
            .eq(WebhookEventStatus::Failed)
            .or(Column::Status
                .eq(WebhookEventStatus::Received)
                .and(Column::ReceivedAt.lte(abandoned_before)));
        let result = Entity::update_many()
            .col_expr(Column::Status, Expr::value(WebhookEventStatus::Received))
            .col_expr(Column::EventType, Expr::value(event_type))
            .col_expr(Column::Error, Expr::value(Option::<String>::None))
            .col_expr(Column::ReceivedAt, Expr::value(now))
            .col_expr(
                Column::ProcessedAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(Column::Id.eq(id))
            .filter(claimable)
            .exec(&self.db)
            .await
            .map_err(store_error)?;
        Ok(result.rows_affected > 0)
    }

    async fn finish(
        &self,
        id: Uuid,
        claim_token: DateTime<Utc>,
        status: DeliveryStatus,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = Entity::update_many()
            .col_expr(Column::Status, Expr::value(to_row_status(status)))
            .col_expr(Column::Error, Expr::value(error.map(str::to_owned)))
            .col_expr(Column::ProcessedAt, Expr::value(Some(now)))
            .filter(Column::Id.eq(id))
            .filter(Column::Status.eq(WebhookEventStatus::Received))
            .filter(Column::ReceivedAt.eq(claim_token))
            .exec(&self.db)
            .await
            .map_err(store_error)?;
        Ok(result.rows_affected > 0)
    }

    async fn count_with_status(&self, status: DeliveryStatus) -> Result<u64, StoreError> {
        Entity::find()
            .filter(Column::Status.eq(to_row_status(status)))
            .count(&self.db)
            .await
            .map_err(store_error)
    }

    async fn delete_received_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        Entity::delete_many()
            .filter(Column::ReceivedAt.lt(cutoff))
            .exec(&self.db)
            .await
            .map(|result| result.rows_affected)
            .map_err(store_error)
    }
}

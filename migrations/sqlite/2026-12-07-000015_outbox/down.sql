DROP TABLE delivery_budgets;
DROP TABLE outbound_messages;

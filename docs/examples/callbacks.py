callbacks = [
    fd.callbacks.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True, verbose=1),
    fd.callbacks.ModelCheckpoint("best.fdnn", monitor="val_accuracy", save_best_only=True),
    fd.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2),
    fd.callbacks.CSVLogger("training.csv"),
]
model.compile(optimizer=fd.optimizers.Adam(learning_rate=3e-3),
              loss="sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(x_train, y_train, epochs=100, validation_split=0.1, callbacks=callbacks, verbose=0)

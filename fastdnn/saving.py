"""Saving and loading models: one zip file, JSON for structure, ``.npy`` for arrays, no pickle anywhere.

A ``.fdnn`` file holds ``fastdnn.json`` (format version, architecture, dtype, compile settings, the
list of variables, the random state) and one ``.npy`` entry per weight and optimizer state buffer.
Arrays are read with ``allow_pickle=False``: an entry that would need unpickling is refused, so a file
from an untrusted source cannot run code. Writes go to a temporary file in the same folder that
replaces the target only when complete (``os.replace``), so a crash mid-save leaves the previous
file intact. Zip CRCs catch corrupted entries; every other mismatch is named in the error.
"""

import io
import json
import os
import zipfile

import numpy as np

from fastdnn import config, losses, metrics as metrics_module, optimizers, random, validation

FORMAT = "fastdnn"
#: 2: the architecture is ``{"class_name", "config"}`` (Sequential or Functional) and the compile
#: settings hold one loss and one metric list per output. Version 1 files (Sequential only) still load.
VERSION = 2
READABLE_VERSIONS = (1, 2)
MANIFEST = "fastdnn.json"

#: Model classes by the name saved with them, registered by `fastdnn.model` (so that this module,
#: below the model, never imports it).
_MODEL_CLASSES = {}


def register_model_class(name, cls):
    """Let `load_model` rebuild architectures saved under ``name`` with ``cls.from_config``."""
    _MODEL_CLASSES[name] = cls


class FileFormatError(ValueError):
    """A file that is not a fastdnn save, is damaged, or does not fit the model."""


# -- writing ----------------------------------------------------------------------------------------


def save_model(model, path, include_optimizer=True):
    """Write ``model`` (architecture, weights, compile settings, optimizer state, random state) to ``path``."""
    model._require_built("save")
    architecture = {"class_name": _class_name(model), "config": model.get_config()}
    manifest = {"format": FORMAT, "version": VERSION, "kind": "model", "model": architecture, "dtype": model.dtype.name}
    arrays = {}
    manifest["variables"] = _variables_entry(model, arrays)
    if model.compiled:
        manifest["compile"] = _compile_settings(model)
        if include_optimizer:
            state = model.optimizer.get_state()
            manifest["optimizer_state"] = {"iterations": state["iterations"], "buffers": []}
            for name, values in state["buffers"].items():
                entry = f"optimizer/{name}.npy"
                arrays[entry] = values
                manifest["optimizer_state"]["buffers"].append({"name": name, "file": entry})
    manifest["random_state"] = random.generator().bit_generator.state
    # each Dropout's counter-based stream (key and step count): a resumed run draws the masks an
    # uninterrupted one would, in any number of data-parallel processes
    manifest["layer_random_streams"] = {
        layer.name: layer.random_stream.get_state() for layer in model.layers if getattr(layer, "random_stream", None) is not None
    }
    _write_atomically(path, manifest, arrays)


def clone_model(model):
    """A model of the same architecture and compile settings as ``model``, with fresh weights.

    As ``keras.models.clone_model`` (and compiled like ``model``, when it is): the layers are rebuilt
    from their configs, so their initializers draw new weights; the optimizer starts from scratch.
    """
    if not isinstance(model, tuple(_MODEL_CLASSES.values())):
        raise TypeError(f"model: expected a fastdnn model, received {validation.describe(model)}")
    dtype = model.dtype.name if model.built else config.floatx()
    previous = config.floatx()
    config.set_floatx(dtype)
    try:
        clone = type(model).from_config(model.get_config())
    finally:
        config.set_floatx(previous)
    if model.compiled:
        _compile_from_settings(clone, _compile_settings(model))
    return clone


def _compile_settings(model):
    """The compile arguments of ``model`` as the manifest stores them (one loss and metric list per output)."""
    settings = model.compile_config()
    return {
        "optimizer": settings["optimizer"],
        "losses": settings["losses"],
        "loss_weights": settings["loss_weights"],
        "metrics": [[_metric_entry(m) for m in entries] for entries in settings["metrics"]],
    }


def _compile_from_settings(model, settings):
    """Compile ``model`` from `_compile_settings` (version 2) or a version 1 file's single loss."""
    if "losses" in settings:  # version 2: one loss and metric list per output
        loss = [losses.get(entry) for entry in settings["losses"]]
        metrics = [[_metric_from_entry(entry) for entry in entries] for entries in settings.get("metrics", [])]
        loss_weights = settings.get("loss_weights")
        if len(loss) == 1:
            loss, metrics = loss[0], metrics[0] if metrics else []
    else:  # version 1: a Sequential's one loss
        loss = losses.get(settings["loss"])
        metrics = [_metric_from_entry(entry) for entry in settings.get("metrics", [])]
        loss_weights = None
    model.compile(optimizer=optimizers.get(settings["optimizer"]), loss=loss, loss_weights=loss_weights, metrics=metrics)


def save_weights(model, path):
    """Write only the variables of ``model`` (see `load_weights`)."""
    model._require_built("save_weights")
    arrays = {}
    manifest = {"format": FORMAT, "version": VERSION, "kind": "weights", "dtype": model.dtype.name}
    manifest["variables"] = _variables_entry(model, arrays)
    _write_atomically(path, manifest, arrays)


def _class_name(model):
    for name, cls in _MODEL_CLASSES.items():
        if type(model) is cls:
            return name
    raise ValueError(f"model: {type(model).__name__} is not a registered model class and cannot be saved")


def _variables_entry(model, arrays):
    entries = []
    for index, (layer, key, value) in enumerate(_model_variables(model)):
        entry = f"variables/{index}.npy"
        arrays[entry] = value
        entries.append({"layer": layer.name, "name": key, "shape": list(value.shape), "file": entry})
    return entries


def _model_variables(model):
    return [(layer, key, value) for layer in model.layers for key, value in layer.variables.items()]


def _metric_entry(metric):
    if isinstance(metric, str):
        return metric
    for name, cls in metrics_module.registry.canonical_items():
        if type(metric) is cls:
            return {"class": name, "config": metric.get_config()}
    raise ValueError(f"metrics: {metric!r} is not a registered metric class and cannot be saved")


def _write_atomically(path, manifest, arrays):
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"path: folder {folder!r} does not exist")
    temporary = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.partial")
    try:
        with open(temporary, "wb") as handle:
            with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_STORED) as archive:
                archive.writestr(MANIFEST, json.dumps(manifest, indent=1))
                for name, values in arrays.items():
                    with archive.open(name, "w", force_zip64=True) as entry:
                        np.lib.format.write_array(entry, np.ascontiguousarray(values), allow_pickle=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


# -- reading ----------------------------------------------------------------------------------------


def _open(path):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"path: no such file {path!r}")
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as error:
        raise FileFormatError(f"{path}: not a fastdnn file, or truncated ({error})") from None
    try:
        manifest = json.loads(archive.read(MANIFEST).decode("utf-8"))
    except KeyError:
        archive.close()
        raise FileFormatError(f"{path}: a zip file, but not a fastdnn save (no {MANIFEST})") from None
    except (zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError, OSError) as error:
        archive.close()
        raise FileFormatError(f"{path}: damaged manifest ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        archive.close()
        raise FileFormatError(f"{path}: not a fastdnn save (format {manifest.get('format') if isinstance(manifest, dict) else None!r})")
    if manifest.get("version") not in READABLE_VERSIONS:
        archive.close()
        raise FileFormatError(
            f"{path}: format version {manifest.get('version')!r}; this fastdnn reads versions {', '.join(map(str, READABLE_VERSIONS))}"
        )
    return archive, manifest


def _read_array(archive, name, path):
    try:
        with archive.open(name) as entry:
            data = entry.read()
    except KeyError:
        raise FileFormatError(f"{path}: entry {name!r} is missing") from None
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise FileFormatError(f"{path}: entry {name!r} is damaged ({error})") from None
    try:
        return np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
    except ValueError as error:
        if "allow_pickle" in str(error) or "Object arrays" in str(error):
            raise FileFormatError(
                f"{path}: entry {name!r} asks to unpickle Python objects; refused (loading must not run code)"
            ) from None
        raise FileFormatError(f"{path}: entry {name!r} is not a valid array ({error})") from None
    except (OSError, EOFError) as error:
        raise FileFormatError(f"{path}: entry {name!r} is damaged ({error})") from None


def _assign_variables(model, archive, manifest, path):
    """Read every variable, check it against the model, then write them all (nothing on error)."""
    entries = manifest.get("variables")
    variables = _model_variables(model)
    if not isinstance(entries, list) or len(entries) != len(variables):
        count = len(entries) if isinstance(entries, list) else "no"
        raise FileFormatError(f"{path}: holds {count} weight arrays, the model has {len(variables)}")
    loaded = []
    for entry, (layer, key, current) in zip(entries, variables):
        values = _read_array(archive, entry.get("file", ""), path)
        where = f"{layer.name}.{key}"
        if values.shape != current.shape:
            raise FileFormatError(
                f"{path}: weights for {where} have shape {values.shape} (saved as {entry.get('layer')}.{entry.get('name')}), "
                f"the model expects {current.shape}"
            )
        if values.dtype.kind not in "fiu" or not np.all(np.isfinite(values)):
            raise FileFormatError(f"{path}: weights for {where} are not finite numbers")
        loaded.append((current, values))
    for current, values in loaded:
        current[...] = values


def load_model(path, compile=True, custom_objects=None):
    """Rebuild the model saved at ``path``: architecture, weights, and (``compile``) its loss, metrics,
    optimizer and optimizer state, ready to continue training. ``custom_objects`` maps class names
    to a user's own layer classes (``{"ScaledTanh": ScaledTanh}``).

    The random state saved with the model is restored too, so that a resumed run shuffles exactly as
    an uninterrupted one would.
    """
    compile = validation.boolean(compile, "compile")
    archive, manifest = _open(path)
    with archive:
        if manifest.get("kind") != "model":
            raise FileFormatError(f"{path}: holds only weights (saved by save_weights); use model.load_weights")
        dtype = manifest.get("dtype", "float32")
        previous = config.floatx()
        config.set_floatx(dtype)
        try:
            model = _model_from_manifest(manifest, custom_objects)
            model._require_built("load_model")
        except (KeyError, TypeError, ValueError) as error:
            raise FileFormatError(f"{path}: the saved architecture cannot be rebuilt ({error})") from None
        finally:
            config.set_floatx(previous)
        _assign_variables(model, archive, manifest, path)
        settings = manifest.get("compile")
        if compile and settings:
            try:
                _compile_from_settings(model, settings)
            except (KeyError, TypeError, ValueError) as error:
                raise FileFormatError(f"{path}: the saved compile settings are invalid ({error})") from None
            state = manifest.get("optimizer_state")
            if state:
                buffers = {entry["name"]: _read_array(archive, entry["file"], path) for entry in state.get("buffers", [])}
                try:
                    model.optimizer.set_state({"iterations": state.get("iterations", 0), "buffers": buffers})
                except (TypeError, ValueError) as error:
                    raise FileFormatError(f"{path}: the saved optimizer state does not fit ({error})") from None
        if "random_state" in manifest:
            try:
                random.generator().bit_generator.state = manifest["random_state"]
            except (TypeError, ValueError, KeyError) as error:
                raise FileFormatError(f"{path}: invalid random state ({error})") from None
        _restore_random_streams(model, manifest.get("layer_random_streams", {}), path)
    return model


def _restore_random_streams(model, saved, path):
    """Give each layer with a random stream its saved key and step count (files from before the
    counter-based streams have none: the layers then start afresh)."""
    if not isinstance(saved, dict):
        raise FileFormatError(f"{path}: invalid layer random streams (expected a dict by layer name, received {type(saved).__name__})")
    for layer in model.layers:
        state = saved.get(layer.name)
        if state is not None and getattr(layer, "random_stream", None) is not None:
            try:
                layer.random_stream.set_state(state)
            except ValueError as error:
                raise FileFormatError(f"{path}: invalid random stream of layer {layer.name!r} ({error})") from None


def _model_from_manifest(manifest, custom_objects=None):
    """The model of the saved architecture (version 1 held a Sequential's config alone)."""
    architecture = manifest["model"]
    if manifest.get("version") == 1:
        return _MODEL_CLASSES["Sequential"].from_config(architecture, custom_objects)
    name = architecture["class_name"]
    if name not in _MODEL_CLASSES:
        raise ValueError(f"unknown model class {name!r}; known: {sorted(_MODEL_CLASSES)}")
    return _MODEL_CLASSES[name].from_config(architecture["config"], custom_objects)


def load_weights(model, path):
    """Set ``model``'s variables from a file written by `save_weights` or `save_model`."""
    model._require_built("load_weights")
    archive, manifest = _open(path)
    with archive:
        _assign_variables(model, archive, manifest, path)


def _metric_from_entry(entry):
    if isinstance(entry, str):
        return entry
    cls = metrics_module.registry.lookup(entry["class"])
    return cls(**entry.get("config", {}))

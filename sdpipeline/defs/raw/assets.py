"""One raw asset per instrument and wave, built from the codebook: a new wave is a codebook
entry and its files, not new code. Each raw asset hangs under an observable source asset
standing for its delivered file, whose data version is the file's SHA-256
(``defs/observation.py``), so the lineage graph starts at the files a contractor sent and
Dagster knows which raw table is behind its file."""

import dagster as dg
import pandas as pd

from sdpipeline.codebook import Codebook, Instrument, default_codebook
from sdpipeline.columns import source_columns
from sdpipeline.defs import keys
from sdpipeline.defs.metadata import in_english, table_metadata
from sdpipeline.defs.observation import observable_files
from sdpipeline.defs.policy import with_policy
from sdpipeline.defs.resources import Warehouse
from sdpipeline.ingest import load_raw
from sdpipeline.inventory import check_delivery_folder
from sdpipeline.readers import DeliveryError
from sdpipeline.warehouse import archive_replaced, replace_table

SCHEMA = keys.RAW
ARCHIVE_SCHEMA = "raw_archive"


def delivery_file_spec(instrument: Instrument, codebook: Codebook, wave_id: str) -> dg.AssetSpec:
    """The delivered file itself, drawn in the lineage graph upstream of its raw table."""
    spec = instrument.files[wave_id]
    return dg.AssetSpec(
        key=keys.delivery(instrument, codebook, wave_id),
        group_name=keys.DELIVERY,
        kinds={spec.format},
        description=f"The contractor's {instrument.label.en.lower()} file for "
        f"{codebook.waves[wave_id].label.en}: data/raw/{wave_id}/{spec.name} "
        f"({spec.encoding or 'encoding detected'}).",
        tags={"instrument": instrument.name, "wave": wave_id},
    )


def raw_asset(instrument: Instrument, codebook: Codebook, wave_id: str) -> dg.AssetsDefinition:
    name = keys.wave_table(instrument, codebook, wave_id)
    spec = instrument.files[wave_id]
    descriptions = in_english(source_columns(instrument, wave_id, codebook))

    @dg.asset(
        key=keys.raw(instrument, codebook, wave_id),
        group_name=keys.RAW,
        deps=[keys.delivery(instrument, codebook, wave_id)],
        kinds={"duckdb", spec.format},
        tags={"layer": "raw", "instrument": instrument.name, "wave": wave_id},
        description=(
            f"{instrument.label.en} ({instrument.label.lv}), {codebook.waves[wave_id].label.en}: "
            f"the delivered {spec.format} file as read, columns named as the codebook spells "
            f"them, with the file's SHA-256 and each record's row number in the file. A "
            f"replaced delivery is kept in raw_archive under its checksum."
        ),
    )
    def _asset(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        warehouse.let_go_of_cached_blocks()
        try:
            check_delivery_folder(codebook, wave_id)
            load = load_raw(instrument, wave_id, codebook)
        except DeliveryError as error:
            raise dg.Failure(
                description=str(error),
                metadata={
                    "file": str(error.path),
                    "column": error.column or "",
                    "row": error.row if error.row is not None else -1,
                },
            ) from error
        labels = pd.DataFrame(
            [
                {"variable": variable, "code": float(code), "label": label}
                for variable, codes in load.raw.value_labels.items()
                for code, label in codes.items()
            ],
            columns=["variable", "code", "label"],
        )
        with warehouse.get_connection() as connection:
            archived = archive_replaced(connection, SCHEMA, name, ARCHIVE_SCHEMA, load.facts.sha256)
            replace_table(connection, SCHEMA, name, load.table)
            replace_table(connection, SCHEMA, f"{name}_value_labels", labels)
            metadata = table_metadata(
                connection,
                SCHEMA,
                name,
                load.table,
                {load.facts.path.name: load.facts.sha256},
                descriptions,
            )
        hidden = list(load.raw.hidden_rows)
        if hidden:
            shown = ", ".join(map(str, hidden[:20])) + (" …" if len(hidden) > 20 else "")
            context.log.warning(
                f"{load.facts.path.name}: {len(hidden)} rows are hidden in Excel (rows {shown}); "
                "they are read like every other row. If they were hidden to leave cases out, "
                "delete them from the file and deliver it again"
            )
        if load.unknown_columns:
            context.log.warning(
                f"{load.facts.path.name}: columns not in the codebook: {load.unknown_columns}"
            )
        metadata.update(
            {
                **load.facts.as_metadata(),
                "format": load.raw.format,
                "encoding": load.raw.encoding or "",
                "delimiter": load.raw.delimiter or "",
                "columns_delivered": load.raw.frame.shape[1],
                "unknown_columns": dg.MetadataValue.json(list(load.unknown_columns)),
                "hidden_rows": dg.MetadataValue.json(hidden),
                "missing_optional_columns": dg.MetadataValue.json(list(load.missing_optional)),
                "value_labels_table": f"{SCHEMA}.{name}_value_labels ({len(labels)} labels)",
                "header_row": load.raw.header_row,
                "previous_version_archived_as": archived or "",
            }
        )
        context.log.info(
            f"{load.facts.path.name}: {len(load.table)} rows read into {SCHEMA}.{name}"
        )
        return dg.MaterializeResult(
            metadata=metadata, data_version=dg.DataVersion(load.facts.sha256)
        )

    return _asset


def build_raw_assets(codebook: Codebook) -> list[dg.AssetsDefinition]:
    """The delivered files (observed in one step) and a raw table per file."""
    files, tables = [], []
    for instrument in codebook.instruments.values():
        for wave_id in codebook.waves:
            if wave_id in instrument.files:
                files.append(delivery_file_spec(instrument, codebook, wave_id))
                tables.append(raw_asset(instrument, codebook, wave_id))
    return [observable_files(files, codebook, "observe_delivery"), *tables]


@dg.definitions
def raw_layer() -> dg.Definitions:
    return dg.Definitions(assets=with_policy(build_raw_assets(default_codebook())))

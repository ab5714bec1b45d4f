"""The cohort index schema: one row per DICOM instance, in physical units.

Every producer of index rows — the local folder scan, PACS query results
(DICOMweb QIDO-RS and DIMSE C-FIND) — fills these columns (missing values
as null) so the tables can be concatenated and queried alike. Column names
carry their units (``_mm``, ``_s``, ``_bq``, ``_kg``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Column", "INSTANCE_COLUMNS", "SERIES_COLUMNS", "ERROR_COLUMNS", "FRAME_COLUMNS",
           "PHI_COLUMNS", "column_names"]


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str  # DuckDB type
    keyword: str | None  # DICOM keyword it comes from (None: derived)
    description: str


INSTANCE_COLUMNS: tuple[Column, ...] = (
    # where it is
    Column("path", "VARCHAR", None, "file path (local) or retrieve URL (remote)"),
    Column("source", "VARCHAR", None, "'local', or 'remote:<server>' for PACS query results"),
    Column("file_size", "BIGINT", None, "bytes (rescans compare size and mtime)"),
    Column("mtime_ns", "BIGINT", None, "modification time, ns since the epoch"),
    # patient
    Column("patient_id", "VARCHAR", "PatientID", ""),
    Column("patient_name", "VARCHAR", "PatientName", ""),
    Column("patient_sex", "VARCHAR", "PatientSex", ""),
    Column("patient_birth_date", "DATE", "PatientBirthDate", ""),
    Column("patient_age", "VARCHAR", "PatientAge", "as written, e.g. '057Y'"),
    Column("patient_weight_kg", "DOUBLE", "PatientWeight", ""),
    # study
    Column("study_uid", "VARCHAR", "StudyInstanceUID", ""),
    Column("study_date", "DATE", "StudyDate", ""),
    Column("study_description", "VARCHAR", "StudyDescription", ""),
    Column("accession_number", "VARCHAR", "AccessionNumber", ""),
    Column("institution", "VARCHAR", "InstitutionName", ""),
    # series
    Column("series_uid", "VARCHAR", "SeriesInstanceUID", ""),
    Column("series_number", "INTEGER", "SeriesNumber", ""),
    Column("series_description", "VARCHAR", "SeriesDescription", ""),
    Column("modality", "VARCHAR", "Modality", ""),
    Column("body_part", "VARCHAR", "BodyPartExamined", ""),
    Column("manufacturer", "VARCHAR", "Manufacturer", ""),
    Column("model", "VARCHAR", "ManufacturerModelName", ""),
    Column("frame_of_reference_uid", "VARCHAR", "FrameOfReferenceUID", ""),
    Column("protocol_name", "VARCHAR", "ProtocolName", ""),
    # instance
    Column("sop_uid", "VARCHAR", "SOPInstanceUID", ""),
    Column("sop_class_uid", "VARCHAR", "SOPClassUID", ""),
    Column("instance_number", "INTEGER", "InstanceNumber", ""),
    Column("transfer_syntax", "VARCHAR", None, "TransferSyntaxUID of the file meta"),
    Column("image_type", "VARCHAR", "ImageType", "values joined by '\\'"),
    Column("acquisition_number", "INTEGER", "AcquisitionNumber", ""),
    Column("acquisition_datetime", "TIMESTAMP", None,
           "AcquisitionDateTime, else AcquisitionDate+Time, else ContentDate+Time"),
    Column("temporal_position", "INTEGER", "TemporalPositionIdentifier", ""),
    Column("trigger_time_s", "DOUBLE", "TriggerTime", "converted from ms"),
    # image
    Column("rows", "INTEGER", "Rows", ""),
    Column("columns", "INTEGER", "Columns", ""),
    Column("n_frames", "INTEGER", "NumberOfFrames", "1 when absent"),
    Column("samples_per_pixel", "INTEGER", "SamplesPerPixel", ""),
    Column("photometric", "VARCHAR", "PhotometricInterpretation", ""),
    Column("bits_allocated", "INTEGER", "BitsAllocated", ""),
    Column("bits_stored", "INTEGER", "BitsStored", ""),
    Column("pixel_spacing_row_mm", "DOUBLE", "PixelSpacing", "spacing between rows"),
    Column("pixel_spacing_col_mm", "DOUBLE", "PixelSpacing", "spacing between columns"),
    Column("slice_thickness_mm", "DOUBLE", "SliceThickness", ""),
    Column("spacing_between_slices_mm", "DOUBLE", "SpacingBetweenSlices", ""),
    Column("image_position_mm", "DOUBLE[]", "ImagePositionPatient", "LPS, 3 values"),
    Column("image_orientation", "DOUBLE[]", "ImageOrientationPatient", "6 direction cosines"),
    Column("slice_location_mm", "DOUBLE", "SliceLocation", ""),
    Column("rescale_slope", "DOUBLE", "RescaleSlope", ""),
    Column("rescale_intercept", "DOUBLE", "RescaleIntercept", ""),
    # acquisition
    Column("kvp", "DOUBLE", "KVP", ""),
    Column("echo_time_s", "DOUBLE", "EchoTime", "converted from ms"),
    Column("repetition_time_s", "DOUBLE", "RepetitionTime", "converted from ms"),
    Column("flip_angle_deg", "DOUBLE", "FlipAngle", ""),
    Column("magnetic_field_t", "DOUBLE", "MagneticFieldStrength", ""),
    Column("contrast_agent", "VARCHAR", "ContrastBolusAgent", ""),
    # PET
    Column("units", "VARCHAR", "Units", "PET pixel units (BQML, GML, CNTS, ...)"),
    Column("radiopharmaceutical", "VARCHAR", "Radiopharmaceutical",
           "from RadiopharmaceuticalInformationSequence"),
    Column("injected_dose_bq", "DOUBLE", "RadionuclideTotalDose", ""),
    Column("half_life_s", "DOUBLE", "RadionuclideHalfLife", ""),
    Column("injection_time", "VARCHAR", "RadiopharmaceuticalStartTime",
           "as written (TM), or RadiopharmaceuticalStartDateTime"),
    Column("decay_correction", "VARCHAR", "DecayCorrection", ""),
    Column("burned_in_annotation", "VARCHAR", "BurnedInAnnotation", "YES / NO / null"),
    # projection radiographs: where their pixel spacing holds (see spacing_table)
    Column("imager_pixel_spacing_row_mm", "DOUBLE", "ImagerPixelSpacing",
           "at the detector, between rows"),
    Column("imager_pixel_spacing_col_mm", "DOUBLE", "ImagerPixelSpacing",
           "at the detector, between columns"),
    Column("magnification_factor", "DOUBLE", "EstimatedRadiographicMagnificationFactor", ""),
    Column("pixel_spacing_calibration", "VARCHAR", "PixelSpacingCalibrationType",
           "GEOMETRY / FIDUCIAL / null"),
)

#: per-series derived columns, computed with medlab.io.check_stack (the loader's own check)
SERIES_COLUMNS: tuple[Column, ...] = (
    Column("series_uid", "VARCHAR", None, ""),
    Column("n_instances", "INTEGER", None, "files in the series"),
    Column("n_frames", "INTEGER", None, "2D frames over all files"),
    Column("is_volume", "BOOLEAN", None, "forms a regular 3D (or 3D+t) volume"),
    Column("volume_problem", "VARCHAR", None, "which check failed, with the values found"),
    Column("n_slices", "INTEGER", None, "distinct slice positions"),
    Column("n_timepoints", "INTEGER", None, "frames per slice position"),
    Column("slice_spacing_mm", "DOUBLE", None, "median step along the slice normal"),
    Column("decodable", "BOOLEAN", None, "pixel data decodable with what is installed"),
    Column("decode_problem", "VARCHAR", None, "why not: transfer syntax and what to install"),
)

ERROR_COLUMNS: tuple[Column, ...] = (
    Column("path", "VARCHAR", None, ""),
    Column("file_size", "BIGINT", None, ""),
    Column("mtime_ns", "BIGINT", None, ""),
    Column("reason", "VARCHAR", None, "why the file is not in the index"),
)

#: one row per 2D frame as medlab's loader assembles it (table ``frames``; the input of the
#: series geometry columns); an image file the loader refuses gets one row with ``problem``
FRAME_COLUMNS: tuple[Column, ...] = (
    Column("path", "VARCHAR", None, "file of the frame"),
    Column("series_uid", "VARCHAR", "SeriesInstanceUID", ""),
    Column("series_number", "VARCHAR", "SeriesNumber", "as written; the loader groups by it"),
    Column("group_key", "VARCHAR", None,
           "JSON of the loader's split key (modality, samples, photometric, echo, image "
           "type, rows, columns, orientation, pixel spacing, ...)"),
    Column("frame_index", "INTEGER", None, "frame in a multi-frame object (0-based)"),
    Column("tile", "INTEGER", None, "tile in a Siemens mosaic (0-based)"),
    Column("position_mm", "DOUBLE[]", None, "Image Position (Patient) of the frame, LPS"),
    Column("orientation", "DOUBLE[]", None, "Image Orientation (Patient) of the frame"),
    Column("temporal", "DOUBLE", None, "temporal position identifier or index"),
    Column("trigger_ms", "DOUBLE", None, "trigger time"),
    Column("time_s", "DOUBLE", None, "acquisition or content time, s since the epoch"),
    Column("acquisition", "INTEGER", "AcquisitionNumber", ""),
    Column("instance", "INTEGER", "InstanceNumber", ""),
    Column("problem", "VARCHAR", None, "why the loader refuses the file's pixel data"),
    Column("frame_record", "VARCHAR", None,
           "the loader's frame (medlab.io.dicom.frames.frame_record): Index.load_series plans "
           "the series from these without reading the headers again"),
)

#: identifying columns hidden by default in summaries and plots
PHI_COLUMNS = frozenset({
    "patient_id", "patient_name", "patient_birth_date", "accession_number", "institution",
})


def column_names(columns: tuple[Column, ...] = INSTANCE_COLUMNS) -> list[str]:
    return [c.name for c in columns]

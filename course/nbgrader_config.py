"""nbgrader configuration of the medlab course pack (run nbgrader from this folder)."""

c = get_config()  # noqa: F821 - provided by nbgrader

c.CourseDirectory.course_id = "medlab-imaging"
# source/<lab>/ holds the instructor versions (with solutions); release/<lab>/ the student versions
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.GenerateAssignment.force = True
# the labs read only the samples bundled with medlab: no network needed while grading
c.ExecutePreprocessor.timeout = 300
c.ExecutePreprocessor.kernel_name = "python3"
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

import React from 'react';

interface Props {
  label: string;
}

export function Button(props: Props) {
  return <button>{props.label}</button>;
}

const App = () => <Button label="ok" />;
